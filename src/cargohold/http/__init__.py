"""The HTTP door: the API under /api/v1, the hot content route, one response sender."""
