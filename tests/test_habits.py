"""Guards on how the tests themselves are written (issue 16, item 5):

- a test sets the product's state through public hooks and fixtures (``use_transport``), never by
  assigning a private name of a product module, and reads none either (``events._sender``): it
  goes through the public API or a seam meant for tests (``events.together()``);
- a test asserts behaviour, not speed: no ``assert`` compares an elapsed time with a number (the
  benchmarks in ``bench/`` measure speed). A deadline that only stops a wait from hanging
  (``assert time.monotonic() < deadline``) compares with a name and passes. A justified exception
  carries ``# timing-ok: <why>`` on the assert's first line.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
PRODUCT = {"jobs", "ants", "orgs", "artifacts", "formicary_site", "bench"}
TIMING_WORDS = ("monotonic", "perf_counter", "elapsed", "latency", "took")
ALLOW_TIMING = "# timing-ok:"


def sources() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def product_names(tree: ast.Module) -> set[str]:
    """Names a file binds to product modules or their members (``from jobs.queen import
    messaging``, ``import ants.web.api``, ``import jobs.domain.events as events``)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PRODUCT:
                    names.add(alias.asname or alias.name.split(".")[0])
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").split(".")[0] in PRODUCT
        ):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_writes(tree: ast.Module, product: set[str]) -> Iterator[tuple[int, str]]:
    """(line, what) for each assignment or setattr of a private name on a product module."""
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for part in ast.walk(target):
                if (
                    isinstance(part, ast.Attribute)
                    and is_private(part.attr)
                    and root_name(part.value) in product
                ):
                    yield node.lineno, f"{ast.unparse(part)} = ..."
        if isinstance(node, ast.Call) and len(node.args) >= 2:
            func = ast.unparse(node.func)
            obj, name = node.args[0], node.args[1]
            named = isinstance(name, ast.Constant) and isinstance(name.value, str) and is_private(name.value)
            if (func == "setattr" or func.endswith(".setattr")) and named and root_name(obj) in product:
                yield node.lineno, f"{func}({ast.unparse(obj)}, {name.value!r}, ...)"
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(".setattr") and node.args:
            dotted = node.args[0]  # monkeypatch.setattr("jobs.domain.messaging._transport", ...)
            if isinstance(dotted, ast.Constant) and isinstance(dotted.value, str) and "." in dotted.value:
                parts = dotted.value.split(".")
                if parts[0] in PRODUCT and any(is_private(p) for p in parts):
                    yield node.lineno, f"{ast.unparse(node.func)}({dotted.value!r}, ...)"


def mentions_time(node: ast.expr) -> bool:
    for part in ast.walk(node):
        word = ""
        if isinstance(part, ast.Name):
            word = part.id
        elif isinstance(part, ast.Attribute):
            word = part.attr
            if word == "time" and isinstance(part.value, ast.Name) and part.value.id == "time":
                return True  # time.time
        elif isinstance(part, ast.Constant) and isinstance(part.value, str):
            word = part.value  # results["elapsed"]
        if any(w in word.lower() for w in TIMING_WORDS):
            return True
    return False


def is_bound(node: ast.expr) -> bool:
    """A number other than 0 (``measured > 0`` says a measurement exists, not how fast it was)."""
    if isinstance(node, ast.UnaryOp):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.value != 0


def timing_asserts(tree: ast.Module, lines: list[str]) -> Iterator[tuple[int, str]]:
    """(line, source) for each assert comparing an elapsed-time expression with a number."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assert) or ALLOW_TIMING in lines[node.lineno - 1]:
            continue
        for compare in (n for n in ast.walk(node.test) if isinstance(n, ast.Compare)):
            sides = [compare.left, *compare.comparators]
            if any(mentions_time(s) for s in sides) and any(is_bound(s) for s in sides):
                yield node.lineno, ast.unparse(compare)
                break


def scan(check) -> list[str]:  # type: ignore[no-untyped-def]
    found = []
    for path in sources():
        text = path.read_text()
        tree = ast.parse(text, filename=str(path))
        for line, what in check(tree, text.splitlines()):
            found.append(f"{path.relative_to(TESTS.parent)}:{line}: {what}")
    return found


def test_no_test_assigns_a_private_name_of_a_product_module() -> None:
    found = scan(lambda tree, _: private_writes(tree, product_names(tree)))
    assert not found, "use a public hook or a fixture (use_transport) instead:\n" + "\n".join(found)


def test_no_test_asserts_on_elapsed_time() -> None:
    found = scan(timing_asserts)
    assert not found, (
        "assert behaviour (counts, order, events), not speed; bench/ measures speed. "
        f"A justified exception says '{ALLOW_TIMING} <why>':\n" + "\n".join(found)
    )


# -- the guards can fail ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "from jobs.queen import messaging\nmessaging._transport = object()\n",
        "import jobs.domain.messaging as m\nm._transport = None\n",
        "import ants.web.api\nants.web.api._cache = {}\n",
        "from jobs.domain import events\ndef f(monkeypatch):\n    monkeypatch.setattr(events, '_GAP', 0)\n",
        "def f(monkeypatch):\n    monkeypatch.setattr('jobs.domain.messaging._transport', None)\n",
    ],
)
def test_the_private_name_guard_catches(source: str) -> None:
    tree = ast.parse(source)
    assert list(private_writes(tree, product_names(tree)))


@pytest.mark.parametrize(
    "source",
    [
        "class T:\n    def __init__(self):\n        self._x = 1\n",
        "from jobs.queen import messaging\nmessaging.set_transport(object())\n",
        "import os\nos._exit_code = 1\n",
    ],
)
def test_the_private_name_guard_lets_pass(source: str) -> None:
    tree = ast.parse(source)
    assert not list(private_writes(tree, product_names(tree)))


@pytest.mark.parametrize(
    "source",
    [
        "assert time.monotonic() - start < 5.0",
        "assert elapsed < 2.0",
        "assert latency < 0.05, kind",
        "assert results['elapsed'] < 1.0",
        "assert 0.7 < time.monotonic() - start < 3.0",
        "assert time.perf_counter() - t0 < 1.0 and len(calls) == 1",
        "assert time.time() - t0 <= 10",
    ],
)
def test_the_timing_guard_catches(source: str) -> None:
    assert list(timing_asserts(ast.parse(source), source.splitlines()))


@pytest.mark.parametrize(
    "source",
    [
        "assert time.monotonic() < deadline, 'did not start'",
        "assert parse_duration(text) == 90",
        "assert cfg.heartbeat_secs == 2.5",
        "assert runs['L']['latency_p50_ms'] > 0",
        "assert elapsed < 2.0  # timing-ok: the only way to see it",
    ],
)
def test_the_timing_guard_lets_pass(source: str) -> None:
    assert not list(timing_asserts(ast.parse(source), source.splitlines()))


# -- reading private names --------------------------------------------------------------------

REPO = TESTS.parent


def is_product_module(dotted: str) -> bool:
    """Whether ``dotted`` names a product module or package (found on disk: nothing is imported)."""
    if dotted.split(".")[0] not in PRODUCT:
        return False
    path = REPO.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def product_modules(tree: ast.Module) -> set[str]:
    """Names a file binds to product modules (``import jobs.domain.events`` binds ``jobs``,
    ``from jobs.domain import events`` binds ``events``), not to their classes or functions."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if is_product_module(alias.name):
                    names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                if is_product_module(f"{node.module}.{alias.name}"):
                    names.add(alias.asname or alias.name)
    return names


def private_reads(tree: ast.Module, modules: set[str]) -> Iterator[tuple[int, str]]:
    """(line, what) for each read of a private name of a product module the test imported:
    ``events._sender``, ``getattr(events, "_sender")``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr) and root_name(node.value) in modules:
            if not isinstance(node.value, ast.Attribute) or not is_private(node.value.attr):
                yield node.lineno, ast.unparse(node)  # the outermost private step only
        elif isinstance(node, ast.Call) and ast.unparse(node.func) == "getattr" and len(node.args) >= 2:
            obj, name = node.args[0], node.args[1]
            named = isinstance(name, ast.Constant) and isinstance(name.value, str) and is_private(name.value)
            if named and root_name(obj) in modules:
                yield node.lineno, f"getattr({ast.unparse(obj)}, {name.value!r})"


def test_no_test_reads_a_private_name_of_a_product_module() -> None:
    found = scan(lambda tree, _: private_reads(tree, product_modules(tree)))
    assert not found, "test through the public API or a seam meant for tests:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "from jobs.domain import events\nwith events._sender._cond:\n    pass\n",
        "from formicary_site import inserts\ninserts._statement.cache_clear()\n",
        "import jobs.domain.events\nx = jobs.domain.events._QueenWaker.GAP_SECS\n",
        "import jobs.domain.events as ev\nev._waker.wake()\n",
        "from jobs.domain import events\ngetattr(events, '_sender')\n",
    ],
)
def test_the_private_read_guard_catches(source: str) -> None:
    tree = ast.parse(source)
    assert list(private_reads(tree, product_modules(tree)))


@pytest.mark.parametrize(
    "source",
    [
        "from jobs.domain import events\nwith events.together():\n    pass\n",
        "from jobs.models import JobRequest\nJobRequest._meta.get_field('id')\n",  # a class, not a module
        "from ants.worker import AntWorker\nAntWorker(c, t)._log_buf\n",
        "from psycopg import _queries\n_queries._query2pg_client.cache_info()\n",
        "import jobs.domain.events\njobs.domain.events.__name__\n",
    ],
)
def test_the_private_read_guard_lets_pass(source: str) -> None:
    tree = ast.parse(source)
    assert not list(private_reads(tree, product_modules(tree)))
