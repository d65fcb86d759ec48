"""The HTTP API under /api/v1: thin routers over ``services``."""
