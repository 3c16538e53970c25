"""Keeping the SHELL tasks of different organizations apart on one host (docs/security.md).

- An ant running as root runs each SHELL task as an unprivileged user of the task's
  organization: uid and gid ``TASK_UID_BASE + organization id`` (no passwd entry needed), no
  supplementary groups, ``HOME`` the task's directory. The directory is given to that user with
  mode 0700, so tasks of other organizations cannot read it; the data folder and the database
  are the server user's, mode 0700/0600, so no task can read them. An ant not running as root
  cannot switch users: its tasks run as the ant's own user (say so to operators).
- On a shared ant (one serving every organization) SHELL tasks are refused unless the operator
  sets ``FORMICARY_ANT_SHARED_SHELL=true``; standalone also allows them while the install has a
  single organization. An ant bound to one organization (``organization_id``) always runs them.
"""

from __future__ import annotations

import os
import shutil
import stat
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ants.protocol import TaskRequest

TASK_UID_BASE = 200_000
SHARED_SHELL_SETTING = "FORMICARY_ANT_SHARED_SHELL"
# Off only for tests whose work folders sit under folders other users cannot enter.
TASK_USERS_SETTING = "FORMICARY_ANT_TASK_USERS"
TRUE_WORDS = ("1", "true", "yes", "on")


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    return default if not value else value in TRUE_WORDS


# util-linux's setpriv switches the user just before the shell's exec. Python cannot vfork a
# child that changes its user itself, so it would fork the whole ant for each command (measured
# with a 90 MB ant: 3.5 ms and 1.6 ms of the ant's CPU a command, through setpriv 2.5 and 0.3).
SETPRIV = shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin")


@dataclass(frozen=True)
class TaskUser:
    uid: int
    gid: int

    def command(self, argv: list[str]) -> list[str] | None:
        """``argv`` run as this user, with no supplementary groups, through setpriv; None when
        this host has no setpriv (``Popen``'s own user, group and extra_groups then do it)."""
        if SETPRIV is None:
            return None
        return [SETPRIV, f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", *argv]


def task_user_possible() -> bool:
    return os.geteuid() == 0 and env_flag(TASK_USERS_SETTING, True)


def task_user(req: TaskRequest) -> TaskUser | None:
    """The user ``req`` runs as, or None when this process cannot switch users."""
    if not task_user_possible():
        return None
    org = req.organization_id or "0"
    # organization ids are integers; anything else still gets a stable uid of its own
    number = (
        int(org) if org.isdigit() and len(org) < 9 else 100_000_000 + zlib.crc32(org.encode()) % 100_000_000
    )
    return TaskUser(uid=TASK_UID_BASE + number, gid=TASK_UID_BASE + number)


def closed_folder(path: Path) -> Path | None:
    """The first of ``path`` and its parents other users may not enter (None: all open)."""
    for folder in [path, *path.parents]:
        if folder.exists() and not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    return None


def give_workdir(root: Path, user: TaskUser) -> None:
    """Hand the task's directory (and what the ant put in it: dependencies, caches) to ``user``,
    mode 0700. Raises ValueError when the user could not reach it by its absolute path."""
    parent = root.parent
    if parent.stat().st_uid == os.geteuid():
        os.chmod(parent, 0o711)  # others may enter their own folder but not list the others
    if (folder := closed_folder(parent)) is not None:
        raise ValueError(
            f"the task runs as uid {user.uid} but {folder} is closed to other users "
            f"(mode {stat.S_IMODE(folder.stat().st_mode):o}): put the ant's work root under a folder "
            f"others may enter (FORMICARY_ANT_WORK_ROOT)"
        )
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.chown(os.path.join(dirpath, name), user.uid, user.gid, follow_symlinks=False)
    os.chown(root, user.uid, user.gid)
    os.chmod(root, 0o700)


def read_task_file(path: Path) -> str:
    """A file the task wrote, read without following a symlink it may have planted there."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(f"{path.name} is not a regular file")
        return handle.read(1 << 20).decode("utf-8", "replace")


def shell_refusal(req: TaskRequest, config: Any, single_tenant: Callable[[], bool] | None) -> str:
    """Why this SHELL task may not run here ('' when it may)."""
    if getattr(config, "organization_id", ""):
        return ""  # an ant of one organization: the queen sends it nothing else
    allowed = getattr(config, "shared_shell", None)
    if allowed is None:
        allowed = env_flag(SHARED_SHELL_SETTING, False)
    if allowed or (single_tenant is not None and single_tenant()):
        return ""
    ant = getattr(config, "ant_id", "this ant")
    return (
        f"SHELL tasks are off on the shared ant {ant}: it serves several organizations and a task "
        f"runs on its host. An operator allows them with {SHARED_SHELL_SETTING}=true "
        f"(docs/security.md), or runs an ant for one organization"
    )
