"""Temporary AWS keys for ``STORAGE_IAM_ROLE`` from the instance metadata service (IMDSv2).

IMDSv2: ``PUT /latest/api/token`` gives a session token, which every ``GET`` under
``/latest/meta-data/`` must carry. Keys are cached and fetched again a margin before they expire,
so no request is ever signed with keys about to lapse.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import BackendUnavailable, Forbidden

if TYPE_CHECKING:
    from obstore.store import S3Credential

TOKEN_TTL_SECONDS = 21600
CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"


class ImdsCredentials:
    """An obstore credential provider (an async callable) that reads and refreshes a role's keys."""

    def __init__(self, role: str, endpoint: str, refresh_margin: timedelta = timedelta(minutes=5)) -> None:
        self.role = role
        self.endpoint = endpoint.rstrip("/")
        self.refresh_margin = refresh_margin
        self.fetches = 0
        self._cached: S3Credential | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> S3Credential:
        async with self._lock:
            if self._cached is None or self._stale(self._cached):
                self._cached = await self._fetch()
            return self._cached

    def _stale(self, cred: S3Credential) -> bool:
        expires = cred["expires_at"]
        return expires is not None and datetime.now(UTC) + self.refresh_margin >= expires

    async def _fetch(self) -> S3Credential:
        try:
            async with httpx.AsyncClient(base_url=self.endpoint, timeout=5) as client:
                token = await client.put(
                    "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)}
                )
                token.raise_for_status()
                headers = {"X-aws-ec2-metadata-token": token.text}
                answer = await client.get(CREDENTIALS_PATH + self.role, headers=headers)
        except httpx.HTTPStatusError as exc:
            raise BackendUnavailable(
                f"instance metadata service at {self.endpoint} refused a session token "
                f"({exc.response.status_code}); is this an EC2 instance with IMDSv2 enabled?"
            ) from exc
        except httpx.HTTPError as exc:
            raise BackendUnavailable(
                f"instance metadata service at {self.endpoint} did not answer ({exc}); STORAGE_IAM_ROLE "
                "works only on an AWS instance"
            ) from exc
        if answer.status_code == 404:
            raise Forbidden(f"STORAGE_IAM_ROLE: the instance has no role named {self.role!r}")
        if answer.status_code != 200:
            raise BackendUnavailable(f"instance metadata service answered {answer.status_code} for role keys")
        body: dict[str, Any] = answer.json()
        if body.get("Code", "Success") != "Success":
            raise Forbidden(f"STORAGE_IAM_ROLE {self.role!r}: metadata service says {body.get('Code')}")
        self.fetches += 1
        return {
            "access_key_id": body["AccessKeyId"],
            "secret_access_key": body["SecretAccessKey"],
            "token": body.get("Token"),
            "expires_at": datetime.fromisoformat(body["Expiration"].replace("Z", "+00:00")),
        }
