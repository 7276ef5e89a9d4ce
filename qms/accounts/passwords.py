"""Argon2id password hashing (argon2-cffi), with rehash when parameters change."""

from __future__ import annotations

import functools
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from qms.core.i18n import _

# argon2id with the library's recommended parameters (RFC 9106 low-memory profile).
_hasher = PasswordHasher()

MIN_PASSWORD_LENGTH = 12

# Shipped in the package: common passwords of at least MIN_PASSWORD_LENGTH characters.
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")


@functools.cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and line[0] != "#")


def use_hasher(hasher: PasswordHasher) -> PasswordHasher:
    """Swap the hasher (tests use cheap parameters); returns the previous one.

    Hashes made with other parameters still verify and are rehashed at the next sign-in.
    """
    global _hasher
    previous, _hasher = _hasher, hasher
    return previous


# Stored for an account that has no password (an imported author's placeholder): not an
# Argon2 hash, so no password ever verifies against it.
NO_PASSWORD = "!no-password"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def is_password_hash(stored: str) -> bool:
    """Whether `stored` is a hash some password could match (not NO_PASSWORD)."""
    return stored.startswith("$argon2")


_dummy: tuple[PasswordHasher, str] | None = None


def verify_dummy(password: str) -> None:
    """Spend the time a real check takes, against a hash no password matches: an unknown
    username (or an account without a password) answers as slowly as a wrong password."""
    global _dummy
    if _dummy is None or _dummy[0] is not _hasher:
        _dummy = (_hasher, _hasher.hash(secrets.token_hex(16)))
    verify_password(_dummy[1], password)


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def password_problem(password: str, *, username: str = "") -> str | None:
    """The reason the password is unacceptable, in the reader's language, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return _(
            "the password must be at least %(length)s characters long", length=MIN_PASSWORD_LENGTH
        )
    if username and username.lower() in password.lower():
        return _("the password must not contain the username")
    if password.strip().lower() in common_passwords():
        return _("this password is one of the most common ones: choose another")
    return None
