"""The standalone data folder's permissions: only the server's user reads the database, the key
files and the artifacts; task users (ants/executors/isolation.py) may only pass through to their
own folder under ``work``."""

import os
from pathlib import Path

WORK_FOLDER = "work"


def protect(data_dir: Path) -> None:
    """Data folder 0711 (enter, not list), every entry but ``work`` closed to others (0700/0600),
    ``work`` 0711; files created later are private too (umask 077)."""
    os.umask(0o077)
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o711)
    (data_dir / WORK_FOLDER).mkdir(exist_ok=True)
    for entry in os.scandir(data_dir):
        if entry.is_symlink():
            continue
        if entry.name == WORK_FOLDER:
            os.chmod(entry.path, 0o711)
        else:
            os.chmod(entry.path, 0o700 if entry.is_dir() else 0o600)
