"""Encryption of queen <-> ant messages on Redis (``FORMICARY_MESSAGE_ENCRYPTION``).

Each ant has its own AES-256-GCM key, derived with HKDF-SHA256 from the deployment's message
secret and the ant id. The queens (and web servers) hold the secret and derive every ant's key;
an ant holds either the secret or only its own derived key (``manage.py message_key --ant-id``
prints it), so a compromised ant given only its key can neither read nor forge another ant's
messages.

A sealed entry is ``nonce (12 bytes) || ciphertext || tag``. The associated data binds it to
its kind (task request, response, log line) and its ant, so an entry moved to another ant's
stream or replayed as another kind fails to open. Registrations stay in clear (they hold no task
data and the queens need them to learn an ant exists).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KIND_TASK = "task"  # queen -> ant: every TaskRequest (EXECUTE and control)
KIND_RESPONSE = "resp"  # ant -> queens: TaskResponse
KIND_LOG = "log"  # ant -> queens/browsers: LogLine
HKDF_SALT = b"formicary-messages/1"
NONCE_BYTES = 12
MIN_SECRET_CHARS = 32
DERIVED_KEY_PREFIX = "ant-key:"  # how a single ant's derived key is written in settings


class SealError(ValueError):
    """A message could not be opened (wrong key, tampered, truncated). Never holds the payload."""


def derive_ant_key(secret: str, ant_id: str) -> bytes:
    """The 32-byte key of ``ant_id`` (HKDF-SHA256 over the deployment secret)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=b"ant:" + ant_id.encode())
    return hkdf.derive(secret.encode())


def export_ant_key(secret: str, ant_id: str) -> str:
    """``derive_ant_key`` written for an ant's setting: ``ant-key:<ant id>:<base64 key>``."""
    return f"{DERIVED_KEY_PREFIX}{ant_id}:{base64.urlsafe_b64encode(derive_ant_key(secret, ant_id)).decode()}"


class MessageSealer:
    """Seals and opens messages with per-ant keys; thread-safe (AESGCM objects are stateless)."""

    def __init__(self, secret: str = "", ant_keys: Mapping[str, bytes] | None = None) -> None:
        if not secret and not ant_keys:
            raise ValueError("message encryption needs a secret or an ant's key")
        self._secret = secret
        self._fixed = {ant_id: AESGCM(key) for ant_id, key in (ant_keys or {}).items()}
        self._fixed_ids = {ant_id: _key_id(key) for ant_id, key in (ant_keys or {}).items()}

    @classmethod
    def from_setting(cls, value: str) -> MessageSealer:
        """A deployment secret (at least 32 characters), or one ant's ``ant-key:<id>:<base64>``."""
        value = value.strip()
        if value.startswith(DERIVED_KEY_PREFIX):
            ant_id, _, encoded = value[len(DERIVED_KEY_PREFIX) :].rpartition(":")
            try:
                key = base64.urlsafe_b64decode(encoded.encode())
            except ValueError:
                key = b""
            if not ant_id or len(key) != 32:
                raise ValueError("an ant key must read ant-key:<ant id>:<32 bytes, base64>")
            return cls(ant_keys={ant_id: key})
        if len(value) < MIN_SECRET_CHARS:
            raise ValueError(f"the message secret must have at least {MIN_SECRET_CHARS} characters")
        return cls(secret=value)

    def _aead(self, ant_id: str) -> AESGCM:
        fixed = self._fixed.get(ant_id)
        if fixed is not None:
            return fixed
        if not self._secret:
            raise SealError(f"no key for ant {ant_id!r} (this process holds another ant's key only)")
        return _derived(self._secret, ant_id)

    def key_id(self, ant_id: str) -> str:
        """A public name of ``ant_id``'s key (a hash of it), sent in the ant's registrations so a
        queen sees at once an ant that encrypts with another key, or not at all."""
        fixed = self._fixed_ids.get(ant_id)
        if fixed is not None:
            return fixed
        if not self._secret:
            raise SealError(f"no key for ant {ant_id!r} (this process holds another ant's key only)")
        return _key_id(derive_ant_key(self._secret, ant_id))

    def seal(self, kind: str, ant_id: str, plain: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead(ant_id).encrypt(nonce, plain, _aad(kind, ant_id))

    def open(self, kind: str, ant_id: str, sealed: bytes) -> bytes:
        if len(sealed) < NONCE_BYTES + 16:
            raise SealError("sealed message too short")
        try:
            return self._aead(ant_id).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _aad(kind, ant_id))
        except InvalidTag:
            raise SealError("authentication failed (tampered, or sealed with another key)") from None


@functools.lru_cache(maxsize=4096)
def _derived(secret: str, ant_id: str) -> AESGCM:
    return AESGCM(derive_ant_key(secret, ant_id))


def _key_id(key: bytes) -> str:
    return "aes-256-gcm:" + hashlib.sha256(b"formicary-key-id|" + key).hexdigest()[:16]


def _aad(kind: str, ant_id: str) -> bytes:
    return f"formicary/1|{kind}|{ant_id}".encode()
