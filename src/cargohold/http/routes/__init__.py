"""The API routers, one per resource; each parses, calls a service, and answers through ``http.responses``."""
