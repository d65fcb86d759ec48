"""The S3 endpoint: a second door over the same services (docs/S3.md)."""
