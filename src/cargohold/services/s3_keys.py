"""S3 key pairs of tokens: an access key id and a secret, made with a token (``token create --s3``), which may
do what the token may (services/access.py) and die with it.

SigV4 needs the secret itself to check a signature, so it is kept encrypted (Fernet, under a key derived
from the instance secret, as connection secrets are), never hashed. A checked key is remembered for
``memo.TOKEN_TTL``, as a checked token is: a revocation on any replica is seen within that.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from ..catalog.connections import SecretBox
from ..catalog.models import ApiToken
from ..errors import UnknownAccessKey

if TYPE_CHECKING:
    from .context import Context
    from .tokens import Principal

ACCESS_KEY_PREFIX = "CHK"
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_INFO = b"cargohold s3 secrets v1"


@dataclass(frozen=True)
class Credentials:
    principal: Principal
    secret: str


def new_pair() -> tuple[str, str]:
    """An access key id shaped as AWS's (20 characters, uppercase: tools check it) and a 40-character secret."""
    access = ACCESS_KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(17))
    return access, secrets.token_urlsafe(30)


def seal(ctx: Context, secret: str) -> str:
    sealed = SecretBox(ctx.secret, _INFO).seal({"secret": secret})
    assert sealed is not None
    return sealed


async def credentials(ctx: Context, access_key: str) -> Credentials:
    """The token and the secret of ``access_key``; ``UnknownAccessKey`` when no token has it."""
    known: Credentials | None = ctx.memo.s3_keys.get(access_key)
    if known is not None:
        return known
    from .tokens import Principal, scope_of  # tokens imports this module to make key pairs

    async with ctx.catalog.session() as session:
        row = await session.scalar(select(ApiToken).where(ApiToken.s3_access_key == access_key))
    if row is None or not row.s3_secret:
        raise UnknownAccessKey("the AWS access key id you provided does not exist in our records")
    secret = SecretBox(ctx.secret, _INFO).open(row.s3_secret)["secret"]
    found = Credentials(Principal(row.name, row.id, scope_of(row)), secret)
    ctx.memo.s3_keys.put(access_key, found)
    return found
