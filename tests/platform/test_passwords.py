"""Password hashing (argon2id): verify, rehash under new parameters, a dummy check for unknown
users, and the length rule."""

from __future__ import annotations

from server.config.settings import Settings
from server.platform.passwords import Passwords, password_problem
from tests.support.accounts import PASSWORD


async def test_passwords_verify_rehash_and_unknown_users(settings: Settings) -> None:
    cheap = settings.model_copy(update={"argon2_time_cost": 1, "argon2_memory_kib": 8192,
                                        "argon2_parallelism": 1})  # fmt: skip
    passwords = Passwords(cheap)
    try:
        stored = await passwords.hash(PASSWORD)
        assert await passwords.verify(stored, PASSWORD)
        assert not await passwords.verify(stored, PASSWORD + "!")
        assert not await passwords.verify(None, PASSWORD)  # an unknown user: a dummy check
        assert not await passwords.verify("not a hash", PASSWORD)
        assert not passwords.needs_rehash(stored)
        stronger = Passwords(cheap.model_copy(update={"argon2_time_cost": 2}))
        try:
            assert stronger.needs_rehash(stored)
            assert await stronger.verify(stored, PASSWORD)  # old hashes still verify
        finally:
            stronger.close()
    finally:
        passwords.close()
    assert password_problem("x" * 7)
    assert password_problem("x" * 129)
    assert password_problem("x" * 8) is None
    assert password_problem("x" * 128) is None
