"""Images: reading their headers now; previews and conversions later."""
