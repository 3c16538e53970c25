"""Encryption of secrets at rest (Fernet: AES-128-CBC + HMAC-SHA256).

New values are encrypted with ``FORMICARY_ENCRYPTION_KEY``. Decryption also accepts the keys in
``FORMICARY_ENCRYPTION_KEYS_OLD`` and, for rows written before the key was its own setting, the
keys earlier versions derived from ``SECRET_KEY`` (the configured one and the public default), so
nothing stops decrypting on upgrade; ``manage.py rotate_keys`` re-encrypts every row with the
current key, after which the old keys can go (docs/security.md).
"""

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from ants.executors.base import MIN_SECRET_LENGTH
from formicary_site.keys import LEGACY_DEFAULT_SECRET_KEY

REDACTED = "****"


def derived_key(secret_key: str) -> str:
    """The Fernet key earlier versions derived from ``SECRET_KEY`` (decryption only)."""
    return base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest()).decode()


@lru_cache(maxsize=4)
def _keys(primary: str, old: tuple[str, ...], secret_key: str) -> tuple[Fernet, MultiFernet]:
    if not primary:
        raise ValueError("FORMICARY_ENCRYPTION_KEY is not set in this process")
    legacy = (derived_key(secret_key), derived_key(LEGACY_DEFAULT_SECRET_KEY))
    ordered = list(dict.fromkeys((primary, *old, *legacy)))  # primary first: it encrypts
    fernets = [Fernet(k.encode()) for k in ordered]
    return fernets[0], MultiFernet(fernets)


def _current() -> tuple[Fernet, MultiFernet]:
    return _keys(settings.FORMICARY_ENCRYPTION_KEY, tuple(settings.FORMICARY_ENCRYPTION_KEYS_OLD),
                 settings.SECRET_KEY)  # fmt: skip


def encrypt(plain: str) -> str:
    return _current()[0].encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _current()[1].decrypt(token.encode()).decode()
    except InvalidToken as exc:  # wrong key or tampered row: never hand out garbage
        raise ValueError("secret cannot be decrypted with the configured keys") from exc


def under_current_key(token: str) -> bool:
    """Whether ``token`` is already encrypted with the current key."""
    try:
        _current()[0].decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def reencrypt(token: str) -> str:
    """``token`` encrypted again with the current key (raises ValueError when no key opens it)."""
    try:
        return _current()[1].rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("secret cannot be decrypted with the configured keys") from exc


def short_secret_problem(value: str) -> str:
    """Why ``value`` cannot be a secret ('' when it can): masking a value this short would mask
    parts of ordinary words and so reveal it. Empty values hide nothing and are allowed."""
    if 0 < len(value.strip()) < MIN_SECRET_LENGTH:
        return (
            f"a secret value must be at least {MIN_SECRET_LENGTH} characters "
            "(a shorter one cannot be masked in output without revealing it)"
        )
    return ""


SECRET_NAME_MARKERS = ("SECRET", "PASSWORD", "TOKEN", "ACCESS_KEY", "PRIVATE_KEY", "CREDENTIAL")


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(marker in upper for marker in SECRET_NAME_MARKERS)
