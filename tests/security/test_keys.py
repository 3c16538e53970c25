"""Keys: no process starts on the public default key, standalone keeps generated keys in the
data folder, signed links need the real key, and ``rotate_keys`` moves secrets to a new key."""

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core import signing
from django.core.management import call_command
from django.utils import timezone

from artifacts.services import SIGNING_SALT
from formicary_site.keys import ENCRYPTION_KEY_FILE, LEGACY_DEFAULT_SECRET_KEY, SECRET_KEY_FILE
from orgs import crypto
from orgs.models import OrgConfig
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
KEY_VARIABLES = ("SECRET_KEY", "FORMICARY_ENCRYPTION_KEY", "FORMICARY_ENCRYPTION_KEYS_OLD", "DEBUG",
                 "DATABASE_URL", "DJANGO_SETTINGS_MODULE")  # fmt: skip


def bare_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of an operator's shell: no keys, no test settings."""
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARIABLES}
    return {**env, "FORMICARY_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **extra}


def manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({}, "SECRET_KEY is not set"),
        ({"SECRET_KEY": LEGACY_DEFAULT_SECRET_KEY}, "SECRET_KEY is the public default"),
        ({"SECRET_KEY": "an-operator-key-0123456789"}, "FORMICARY_ENCRYPTION_KEY is not set"),
        ({"SECRET_KEY": "an-operator-key-0123456789", "FORMICARY_ENCRYPTION_KEY": "short"},
         "FORMICARY_ENCRYPTION_KEY must be a Fernet key"),
    ],
)  # fmt: skip
def test_a_process_without_keys_refuses_to_start(tmp_path, extra, variable):
    done = manage(["queen", "--id", "q-refused"], bare_env(tmp_path, **extra))
    assert done.returncode != 0
    assert variable in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / SECRET_KEY_FILE).exists()


def test_debug_and_ants_start_without_keys(tmp_path):
    assert manage(["check"], bare_env(tmp_path, DEBUG="true")).returncode == 0
    assert (tmp_path / SECRET_KEY_FILE).exists()
    ant_dir = tmp_path / "ant"
    ant_dir.mkdir()
    # an ant signs and decrypts nothing: it is not given the web's keys
    assert manage(["ant", "--help"], bare_env(ant_dir)).returncode == 0


def start_standalone(data_dir: Path) -> str:
    """Starts standalone on SQLite in ``data_dir`` until it serves, stops it; its output."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "standalone", "--no-ant", "--port", str(port)],
                            env=bare_env(data_dir), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.2)
        else:
            pytest.fail("standalone did not start")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    return out


def test_standalone_generates_private_key_files_and_reuses_them(tmp_path):
    data = tmp_path / "data"
    start_standalone(data)
    keys = {}
    for name in (SECRET_KEY_FILE, ENCRYPTION_KEY_FILE):
        path = data / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        keys[name] = path.read_text()
    assert LEGACY_DEFAULT_SECRET_KEY not in keys[SECRET_KEY_FILE]
    Fernet(keys[ENCRYPTION_KEY_FILE].strip().encode())  # a valid Fernet key
    assert stat.S_IMODE(data.stat().st_mode) == 0o711  # task users pass through, never list
    assert stat.S_IMODE((data / "formicary.sqlite3").stat().st_mode) == 0o600

    start_standalone(data)
    assert {name: (data / name).read_text() for name in keys} == keys
    # other commands of the same install (create_api_token, ...) use the kept keys
    assert manage(["check"], bare_env(data)).returncode == 0


def test_a_link_signed_with_the_old_default_key_is_refused(api, anon_api):
    meta = api.post(
        "/api/artifacts?name=a.txt", data=b"org data", content_type="application/octet-stream"
    ).json()
    expires = int(timezone.now().timestamp()) + 3600
    forged = signing.dumps({"a": meta["id"], "e": expires}, key=LEGACY_DEFAULT_SECRET_KEY, salt=SIGNING_SALT,
                           compress=False)  # fmt: skip
    refused = anon_api.get(f"/api/artifacts/{meta['id']}/download?sig={forged}")
    assert refused.status_code == 403 and "signature" in refused.json()["error"]
    genuine = anon_api.get(meta["download_url"].split("7777", 1)[-1])
    assert genuine.status_code == 200


def _row(org_id: int, token: str) -> OrgConfig:
    return OrgConfig.objects.create(organization_id=org_id, name=f"K{OrgConfig.objects.count()}", secret=True,
                                    value=token)  # fmt: skip


def test_rows_of_earlier_versions_still_decrypt_and_rotate_moves_them(alice, settings):
    legacy = Fernet(crypto.derived_key(LEGACY_DEFAULT_SECRET_KEY).encode())
    old_row = _row(alice.org_id, legacy.encrypt(b"pem-of-old").decode())
    assert old_row.plain_value() == "pem-of-old"  # upgrade: nothing stops decrypting

    retired = settings.FORMICARY_ENCRYPTION_KEY
    current_row = _row(alice.org_id, crypto.encrypt("kept-value"))
    settings.FORMICARY_ENCRYPTION_KEY = Fernet.generate_key().decode()
    settings.FORMICARY_ENCRYPTION_KEYS_OLD = [retired]
    call_command("rotate_keys")

    settings.FORMICARY_ENCRYPTION_KEYS_OLD = []
    for row, plain in ((old_row, "pem-of-old"), (current_row, "kept-value")):
        row.refresh_from_db()
        assert crypto.under_current_key(row.value)
        assert (
            Fernet(settings.FORMICARY_ENCRYPTION_KEY.encode()).decrypt(row.value.encode()).decode() == plain
        )


def test_rotate_names_a_row_no_key_opens(alice):
    _row(alice.org_id, Fernet(Fernet.generate_key()).encrypt(b"lost").decode())
    with pytest.raises(Exception, match="FORMICARY_ENCRYPTION_KEYS_OLD"):
        call_command("rotate_keys")
