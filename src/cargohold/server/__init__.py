"""The HTTP server: an ASGI app that later issues grow into the API and the web UI."""
