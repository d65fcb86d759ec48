"""Links: files that stay where they are, registered by URI. Parsing of links files lives here."""
