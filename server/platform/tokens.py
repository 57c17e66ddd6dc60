"""Access tokens: HS256 JWTs (PyJWT) with a `kid` for key rotation, checked as RFC 8725 asks.

Claims `iss`, `aud`, `sub`, `iat`, `exp`, `jti`, `typ`, `ver` and `sid` are all required,
the algorithm is pinned to HS256, and 30 s of clock leeway is allowed. `ver` is the user's
token_version when the token was made: raising it ends every token the user holds. `sid` is
the sign-in (the refresh-token family) it belongs to: revoking the family, on sign-out or when
a spent refresh token comes back, ends every access token of that sign-in at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web

from server.config.parsers import parse_jwt_keys
from server.config.settings import Settings
from server.platform import localsecrets

TOKEN_KEYS: web.AppKey[TokenKeys] = web.AppKey("token_keys")

ALGORITHM = "HS256"
AUDIENCE = "btec-api"
LEEWAY_SECONDS = 30
REQUIRED = ["iss", "aud", "sub", "iat", "exp", "jti", "typ", "ver", "sid"]
VERIFIED_CACHE_SIZE = 10_000  # about 4 MB of recently verified tokens per process


def digest(token: str) -> bytes:
    """What the database keeps of an opaque token (refresh, reset, verification): its
    SHA-256, so a leaked table holds nothing usable."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    version: int
    jti: str
    expires_at: int
    session: uuid.UUID  # the sign-in: its refresh-token family


class InvalidToken(Exception):
    """Why a token was refused, in words safe to show the caller."""


class TokenKeys:
    """Signs with the first key, verifies with any; all from settings."""

    def __init__(self, settings: Settings) -> None:
        if settings.jwt_keys is not None:
            self.keys = parse_jwt_keys(settings.jwt_keys.get_secret_value())
        else:
            secret_key = localsecrets.secret(settings, "secret_key")
            if secret_key is None:  # production settings refuse this; a guard all the same
                raise ValueError("no signing key: set BTEC_SECRET_KEY or BTEC_JWT_KEYS")
            base = secret_key.get_secret_value().encode()
            self.keys = {"k0": hmac.new(base, b"btec access tokens", hashlib.sha256).digest()}
        self.signing_kid = next(iter(self.keys))
        # The deployment's URL, else its service id: not where it happens to listen, so that
        # every process of one deployment issues and accepts the same tokens.
        self.issuer = settings.public_url or settings.service_id
        self.lifetime = settings.access_token_seconds
        # Tokens that passed every check, by their exact text: a client sends the same token
        # on every request for its lifetime, and the same text under the same keys always
        # verifies the same way, so only the expiry needs checking again. Oldest out first.
        self._verified: dict[str, AccessClaims] = {}
        self.max_verified = VERIFIED_CACHE_SIZE

    def issue(
        self, user_id: int, version: int, session: uuid.UUID, now: float | None = None
    ) -> tuple[str, int]:
        """A new access token of the sign-in `session`, and its lifetime in seconds."""
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": str(user_id),
            "iat": issued,
            "exp": issued + self.lifetime,
            "jti": secrets.token_hex(16),
            "typ": "access",
            "ver": version,
            "sid": str(session),
        }
        token = jwt.encode(
            claims, self.keys[self.signing_kid], algorithm=ALGORITHM,
            headers={"kid": self.signing_kid},
        )  # fmt: skip
        return token, self.lifetime

    def decode(self, token: str) -> AccessClaims:
        """The claims of a valid access token, else InvalidToken."""
        known = self._verified.get(token)
        if known is not None:
            if known.expires_at > time.time() - LEEWAY_SECONDS:  # PyJWT's own expiry rule
                return known
            del self._verified[token]
            raise InvalidToken("the token has expired")
        claims = self._decode(token)
        if len(self._verified) >= self.max_verified:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = claims
        return claims

    def _decode(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
            key = self.keys.get(str(header.get("kid")))
            if key is None:
                raise InvalidToken("the token's key is not known")
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=self.issuer,
                leeway=LEEWAY_SECONDS, options={"require": REQUIRED},
            )  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except (jwt.PyJWTError, ValueError):  # ValueError: text that is not ASCII
            raise InvalidToken("the token is not valid") from None
        if claims["typ"] != "access":
            raise InvalidToken("not an access token")
        try:
            return AccessClaims(int(claims["sub"]), int(claims["ver"]), str(claims["jti"]),
                                int(claims["exp"]), uuid.UUID(str(claims["sid"])))  # fmt: skip
        except (TypeError, ValueError):
            raise InvalidToken("the token is not valid") from None
