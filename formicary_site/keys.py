"""Where the process's keys come from: ``SECRET_KEY`` (signing: sessions, artifact links) and
``FORMICARY_ENCRYPTION_KEY`` (Fernet, secrets at rest). Used by the settings module only.

The rule (docs/security.md): a key set in the environment wins; else a key file in the data
folder (``secret_key``, ``encryption_key``, mode 0600) written by an earlier standalone start;
else ``manage.py standalone`` and ``DEBUG`` processes generate that file, an ant (which signs and
decrypts nothing) uses a throw-away key, and every other process refuses to start naming the
variable. The key the product shipped with before keys were required is refused outright:
it is public.
"""

import base64
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

# The fixed default of earlier versions: anyone can sign with it, so it is never accepted.
LEGACY_DEFAULT_SECRET_KEY = "formicary-standalone-insecure-key-change-me"
SECRET_KEY_FILE = "secret_key"
ENCRYPTION_KEY_FILE = "encryption_key"


def command_name(argv: list[str] | None = None) -> str:
    """The management command this process runs (``standalone``, ``ant``, ...), or ''."""
    argv = sys.argv if argv is None else argv
    if len(argv) >= 2 and Path(argv[0]).name in ("manage.py", "django-admin"):
        return argv[1]
    return ""


def new_secret_key() -> str:
    return secrets.token_urlsafe(50)


def new_fernet_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def read_key_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""


def key_file(path: Path, make: Callable[[], str]) -> str:
    """The key kept in ``path``, created (mode 0600, never readable by others, even for a moment)
    when missing; two processes starting at once agree on the one written first."""
    existing = read_key_file(path)
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_key_file(path)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(make() + "\n")
    return read_key_file(path)


def _missing(variable: str, why: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(
        f"{variable} {why}. Set {variable} in the environment (see docs/security.md), or run "
        f"`manage.py standalone`, which generates one in FORMICARY_DATA_DIR."
    )


def secret_key(value: str, data_dir: Path, debug: bool, command: str) -> str:
    if value == LEGACY_DEFAULT_SECRET_KEY:
        raise _missing("SECRET_KEY", "is the public default of earlier versions and is refused")
    if value:
        return value
    path = data_dir / SECRET_KEY_FILE
    if command == "standalone" or debug:
        return key_file(path, new_secret_key)
    if stored := read_key_file(path):
        return stored
    if command == "ant":
        return new_secret_key()  # an ant signs nothing: it need not hold the web's key
    raise _missing("SECRET_KEY", "is not set")


def encryption_key(value: str, data_dir: Path, debug: bool, command: str) -> str:
    """The primary Fernet key ('' for an ant: it never decrypts)."""
    if not value:
        path = data_dir / ENCRYPTION_KEY_FILE
        if command == "standalone" or debug:
            value = key_file(path, new_fernet_key)
        elif not (value := read_key_file(path)):
            if command == "ant":
                return ""
            raise _missing("FORMICARY_ENCRYPTION_KEY", "is not set")
    check_fernet_key(value, "FORMICARY_ENCRYPTION_KEY")
    return value


def message_key(enabled: bool, value: str) -> str:
    """The queen <-> ant message key ('' when encryption is off); checked here so a bad one stops the start."""
    if not enabled:
        return ""
    from ants.messaging.sealing import MessageSealer

    if not value:
        raise _missing("FORMICARY_MESSAGE_KEY", "is not set (FORMICARY_MESSAGE_ENCRYPTION is on)")
    try:
        MessageSealer.from_setting(value)
    except ValueError as exc:
        raise ImproperlyConfigured(
            f'FORMICARY_MESSAGE_KEY: {exc}; make one with python -c "import secrets; print(secrets.token_urlsafe(32))"'
        ) from None
    return value


def check_fernet_key(value: str, variable: str) -> None:
    try:
        ok = len(base64.urlsafe_b64decode(value.encode())) == 32
    except ValueError:
        ok = False
    if not ok:
        raise ImproperlyConfigured(
            f"{variable} must be a Fernet key: 32 bytes in URL-safe base64 (44 characters); "
            'make one with python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
        )
