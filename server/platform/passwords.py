"""Password hashing with argon2id, off the event loop and bounded.

argon2-cffi does the hashing. Each hash holds BTEC_ARGON2_MEMORY_KIB of memory for tens of
milliseconds, so hashes run on a small thread pool of their own (BTEC_PASSWORD_HASH_WORKERS):
extra logins queue instead of each taking 64 MiB, which keeps the process's memory bounded.
Unknown users are checked against a dummy hash, so a login takes as long whether or not the
account exists.
"""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from server.config.settings import Settings

PASSWORDS: web.AppKey[Passwords] = web.AppKey("passwords")

MIN_LENGTH = 8
MAX_LENGTH = 128


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None. Length only (NIST SP 800-63B): 8 to 128
    characters."""
    if len(password) < MIN_LENGTH:
        return f"At least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"At most {MAX_LENGTH} characters."
    return None


class Passwords:
    """Hash and verify passwords on a bounded pool; close() when done."""

    def __init__(self, settings: Settings) -> None:
        self.hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        self._pool = ThreadPoolExecutor(
            max_workers=settings.password_hash_workers, thread_name_prefix="argon2"
        )
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self.hasher.hash, password
        )

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether `password` matches; with no stored hash (an unknown user) the same work
        is done against a dummy hash and the answer is False."""
        if stored is None:
            if self._dummy is None:
                self._dummy = await self.hash(secrets.token_urlsafe(16))
            await asyncio.get_running_loop().run_in_executor(
                self._pool, self._check, self._dummy, password
            )
            return False
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._check, stored, password
        )

    def _check(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        """True when `stored` was made with other parameters than today's."""
        try:
            return self.hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True

    def close(self) -> None:
        self._pool.shutdown(wait=True)
