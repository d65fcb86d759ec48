"""cargohold: a self-hosted storage layer for computer-vision data."""

__version__ = "0.1.0"
