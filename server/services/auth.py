"""Signing in: passwords checked in constant work, access tokens issued and checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.errors import InvalidCredentials, InvalidToken
from server.infra import tokens as token_infra
from server.infra.passwords import Passwords
from server.infra.tokens import TokenKeys
from server.services.units import Connect
from server.store import users as store


@dataclass(frozen=True)
class Session:
    access_token: str
    expires_in: int

    def as_dict(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "token_type": "Bearer",
                "expires_in": self.expires_in}  # fmt: skip


async def login(
    *, db: Connect, passwords: Passwords, keys: TokenKeys, email: str, password: str
) -> Session:
    """A session for the right password of an active account; one answer for every failure,
    after the same hashing work whether or not the account exists."""
    async with db() as conn:
        user = await store.by_email(conn, email)
    stored = user["password_hash"] if user else None
    if not await passwords.verify(stored, password) or user is None or not user["is_active"]:
        raise InvalidCredentials("the email or password is wrong")
    if passwords.needs_rehash(user["password_hash"]):
        fresh = await passwords.hash(password)
        async with db() as conn:
            await store.rehash(conn, user["id"], fresh)
    token, lifetime = keys.issue(user["id"], user["token_version"])
    return Session(token, lifetime)


async def authenticate(*, db: Connect, keys: TokenKeys, token: str) -> dict[str, Any]:
    """The user a valid access token belongs to: signature, claims, and the account still
    active at the token's version."""
    try:
        claims = keys.decode(token)
    except token_infra.InvalidToken as exc:
        raise InvalidToken(str(exc)) from None
    async with db() as conn:
        user = await store.by_id(conn, claims.user_id)
    if user is None or not user["is_active"] or user["token_version"] != claims.version:
        raise InvalidToken("the token has been revoked")
    return user
