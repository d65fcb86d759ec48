"""The Python SDK and workspace sync: client-side code over httpx, run on machines other than the server."""
