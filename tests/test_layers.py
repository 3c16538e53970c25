"""Import guards for the layers (issue 16, item 3; docs/architecture.md draws them):

- the worker side of ``ants`` (everything but ``ants/web``, the model, admin, app config and
  migrations) imports nothing from ``jobs``, ``orgs``, ``artifacts``, ``formicary_site``, Django,
  DRF, Channels or the web side of ants: an ant on another machine needs only Redis and the object
  store. The ``ant`` command may read Django's settings and be a management command, nothing more;
- nothing outside ``jobs/queen`` imports the daemon, but the commands that start it (and tests and
  the benchmark harness);
- the domain layer (``jobs/domain``) imports neither the daemon nor the layers above it.

The checks read every module's syntax tree, so an import inside a function counts too.
"""

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("jobs", "ants", "orgs", "artifacts", "formicary_site")

# The worker side of ants: all of ants/ but these (the web side, and what Django looks for).
WEB_SIDE = ("ants/web/", "ants/models.py", "ants/admin.py", "ants/apps.py", "ants/migrations/",
            "ants/management/commands/message_key.py")  # fmt: skip
WORKER_FORBIDDEN = ("jobs", "orgs", "artifacts", "formicary_site", "django", "rest_framework", "channels",
                    "channels_redis", "ants.web", "ants.models", "ants.admin", "ants.apps")  # fmt: skip
# The ant command is a management command that reads the deployment's settings; nothing else of Django.
ANT_COMMAND = "ants/management/commands/ant.py"
ANT_COMMAND_ALLOWED = ("django.conf", "django.core.management")
# Who may import the daemon: the commands that start a queen (tests and bench/ are not scanned).
DAEMON = "jobs.queen"
DAEMON_STARTERS = (
    "jobs/queen/",
    "jobs/management/commands/queen.py",
    "jobs/management/commands/standalone.py",
)
DOMAIN_FORBIDDEN = (DAEMON, "jobs.api", "jobs.ui", "jobs.consumers", "ants.web")


def under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def imported_modules(tree: ast.Module, package: str) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import, relative ones made absolute; ``from a import b``
    yields ``a.b`` (b may be a module)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}" if alias.name != "*" else module


def offences(source: str, package: str, forbidden: Iterable[str], allowed: Iterable[str] = ()) -> list[str]:
    tree = ast.parse(source)
    return [f"{line}: {name}" for line, name in imported_modules(tree, package)
            if under(name, forbidden) and not under(name, allowed)]  # fmt: skip


def product_files(*tops: str) -> list[Path]:
    files = []
    for top in tops:
        files += [p for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(files)


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def scan(files: Iterable[Path], forbidden: Iterable[str], allowed: Iterable[str] = ()) -> list[str]:
    found = []
    for path in files:
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
        found += [f"{rel(path)}:{o}" for o in offences(path.read_text(), package, forbidden, allowed)]
    return found


def worker_files() -> list[Path]:
    return [p for p in product_files("ants") if not rel(p).startswith(WEB_SIDE) and rel(p) != ANT_COMMAND]


def test_the_worker_side_of_ants_imports_no_web_code() -> None:
    assert len(worker_files()) > 20  # the split is real: protocol, messaging, executors, worker, ...
    found = scan(worker_files(), WORKER_FORBIDDEN)
    found += scan([ROOT / ANT_COMMAND], WORKER_FORBIDDEN, ANT_COMMAND_ALLOWED)
    assert not found, "the worker side runs without the web's code and database:\n" + "\n".join(found)


def test_only_the_queen_commands_import_the_daemon() -> None:
    files = [p for p in product_files(*PRODUCT) if not rel(p).startswith(DAEMON_STARTERS)]
    found = scan(files, [DAEMON])
    assert not found, "use jobs.domain (or a service), not the queen daemon:\n" + "\n".join(found)


def test_the_domain_layer_imports_no_daemon_and_nothing_above_it() -> None:
    found = scan(product_files("jobs/domain"), DOMAIN_FORBIDDEN)
    message = "jobs/domain sits under the daemon, the API, the UI and the consumers:\n"
    assert not found, message + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "package", "forbidden"),
    [
        ("from jobs.models import JobRequest\n", "ants.executors", WORKER_FORBIDDEN),
        ("def f():\n    from django.db import models\n", "ants", WORKER_FORBIDDEN),
        ("import artifacts.storage\n", "ants", WORKER_FORBIDDEN),
        ("from ants import web\n", "ants.messaging", WORKER_FORBIDDEN),
        ("from ..web.api import x\n", "ants.executors", WORKER_FORBIDDEN),
        ("from jobs.queen import engine\n", "jobs.api", [DAEMON]),
        ("from jobs import queen\n", "jobs.services", [DAEMON]),
        ("from ..queen.leases import lease\n", "jobs.domain", DOMAIN_FORBIDDEN),
    ],
)
def test_a_forbidden_import_is_found(source: str, package: str, forbidden: tuple[str, ...]) -> None:
    assert offences(source, package, forbidden)


def test_allowed_imports_pass() -> None:
    assert not offences("from ants.protocol import TaskRequest\nimport json\n", "ants", WORKER_FORBIDDEN)
    assert not offences("from jobs.domain import transitions\n", "jobs.queen", DOMAIN_FORBIDDEN)
    source = "from django.conf import settings\nfrom django.core.management.base import BaseCommand\n"
    assert not offences(source, "ants.management.commands", WORKER_FORBIDDEN, ANT_COMMAND_ALLOWED)
    assert offences("from django.db import models\n", "ants.management.commands", WORKER_FORBIDDEN,
                    ANT_COMMAND_ALLOWED)  # fmt: skip


def method_lists(source: str) -> list[int]:
    """Lines of list, tuple or set literals of three or more task method names."""
    from ants.methods import METHODS

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            names = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if len(names) >= 3 and set(names) <= METHODS:
                found.append(node.lineno)
    return found


def test_the_method_names_are_written_once() -> None:
    assert method_lists('X = ["SHELL", "HTTP_GET", "DOCKER"]\n')
    files = [p for p in product_files(*PRODUCT) if rel(p) != "ants/methods.py"]
    found = [f"{rel(p)}:{line}" for p in files for line in method_lists(p.read_text())]
    assert not found, "use the lists of ants/methods.py:\n" + "\n".join(found)
