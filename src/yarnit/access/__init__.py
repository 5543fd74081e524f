"""Access: who is asking (named tokens, the CLI's OS user) and the audited path to restricted columns.

The nouns: an :class:`AccessToken` (named, with roles, hashed at rest,
revocable), the :class:`Principal` behind a request, and a
:class:`RestrictedRead` (one audited raw read). The services: :class:`Tokens`
and :class:`RestrictedReads`.
"""

from yarnit.data.restricted import RestrictedColumn

from .reads import RestrictedRead, RestrictedReads
from .tokens import (
    LEGACY_NAME,
    LOOPBACK,
    READ_RESTRICTED,
    ROLES,
    WRITE,
    AccessToken,
    Principal,
    TokenNotFound,
    Tokens,
    cli_actor,
)

__all__ = [
    "LEGACY_NAME",
    "LOOPBACK",
    "READ_RESTRICTED",
    "ROLES",
    "WRITE",
    "AccessToken",
    "Principal",
    "RestrictedColumn",
    "RestrictedRead",
    "RestrictedReads",
    "TokenNotFound",
    "Tokens",
    "cli_actor",
]
