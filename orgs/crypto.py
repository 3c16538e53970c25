"""Encryption of secrets at rest (Fernet: AES-128-CBC + HMAC-SHA256)."""

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

REDACTED = "****"


@lru_cache(maxsize=4)
def _fernet(key: str, secret_key: str) -> Fernet:
    if not key:
        # Derive a stable key from SECRET_KEY so a standalone install needs no extra setting.
        key = base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest()).decode()
    return Fernet(key.encode())


def fernet() -> Fernet:
    return _fernet(settings.FORMICARY_ENCRYPTION_KEY, settings.SECRET_KEY)


def encrypt(plain: str) -> str:
    return fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:  # wrong key or tampered row: never hand out garbage
        raise ValueError("secret cannot be decrypted with the configured key") from exc


SECRET_NAME_MARKERS = ("SECRET", "PASSWORD", "TOKEN", "ACCESS_KEY", "PRIVATE_KEY", "CREDENTIAL")


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(marker in upper for marker in SECRET_NAME_MARKERS)
