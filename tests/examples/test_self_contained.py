"""The repository stands alone: no tracked file (code, tests, scripts, docs, bench) names a path
outside it. The one allowed place is .ci/run, which points FORMICARY_REFERENCE_EXAMPLES at the
reference's examples beside the repository."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

# The shared folder beside the repository, or this machine's top-level work folder (a path that
# merely ends in .../work/, such as /var/lib/formicary/work/, is not it).
OUTSIDE = re.compile(r"\.\./shared\b|(?<![\w.~-])/wor[k]/")
ALLOWED = {".ci/run"}


def tracked_files() -> list[str]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    result = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"not a git checkout: {result.stderr.decode(errors='replace').strip()}")
    return [name for name in result.stdout.decode().split("\0") if name]


def test_no_tracked_file_refers_outside_the_repository():
    offenders = []
    for name in tracked_files():
        path = ROOT / name
        if name in ALLOWED or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # images and other binaries
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert not offenders, "paths outside the repository:\n" + "\n".join(offenders)


def reference_beside() -> str:
    """The folder beside the repository that .ci/run names (the one file allowed to name it):
    the tests build their examples of outside paths from it instead of spelling them."""
    found = re.search(r"^reference=(\S+)$", (ROOT / ".ci" / "run").read_text(), re.M)
    assert found, ".ci/run no longer names the reference examples folder"
    return found.group(1)


def test_the_pattern_finds_what_it_should() -> None:
    beside = reference_beside()  # ../<folder>/examples
    assert OUTSIDE.search("EXAMPLES = Path('/" + "work/" + beside.removeprefix("../") + "')")
    assert OUTSIDE.search("ROOT / '..' / '..' / 'x'") is None  # pieces are caught by the clone check
    assert OUTSIDE.search("cd " + beside)
    assert OUTSIDE.search("work_root: /var/lib/formicary/work/ants") is None
    assert OUTSIDE.search("working_dir: /work") is None


def fake_checkout(tmp_path: Path) -> Path:
    """A copy of .ci/run in a folder of its own, with a scripts/test that only reports."""
    repo = tmp_path / "formicary"
    (repo / ".ci").mkdir(parents=True)
    (repo / "scripts").mkdir()
    shutil.copy(ROOT / ".ci" / "run", repo / ".ci" / "run")
    (repo / "scripts" / "test").write_text('echo "scripts/test ran with $FORMICARY_REFERENCE_EXAMPLES"\n')
    return repo


def ci_run(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(repo / ".ci" / "run")], capture_output=True, text=True, cwd="/")


def test_ci_run_is_the_readme_command_with_the_reference_examples(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    assert "scripts/test" in readme and "exec bash scripts/test" in (ROOT / ".ci" / "run").read_text()
    repo = fake_checkout(tmp_path)
    missing = ci_run(repo)
    assert (
        missing.returncode == 1
        and "is missing" in missing.stderr
        and "scripts/test ran" not in missing.stdout
    )
    reference = (repo / reference_beside()).resolve()  # beside the fake checkout, as .ci/run wants
    reference.mkdir(parents=True)
    empty = ci_run(repo)
    assert empty.returncode == 1 and "has no *.yaml" in empty.stderr
    (reference / "job.yaml").write_text("job_type: j\n")
    ran = ci_run(repo)
    assert ran.returncode == 0, ran.stderr
    assert f"scripts/test ran with {reference}" in ran.stdout  # an absolute path
