"""cargohold: a self-hosted storage layer for computer-vision data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sdk.client import Client

__version__ = "0.1.0"
__all__ = ["Client", "__version__"]


def __getattr__(name: str) -> Any:
    # The SDK (and httpx under it) loads on first use: the CLI and the server import this package too.
    if name == "Client":
        from .sdk.client import Client

        return Client
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
