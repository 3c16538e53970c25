"""A 200 MB artifact goes up and down through the ant (its hooks, in a fresh process) and the web
API (upload from a streamed body, streaming download) without being held in memory: the peak
RSS grows by less than 100 MB over the baseline. Peak RSS is read from /proc (VmHWM, reset
through /proc/self/clear_refs just before the transfer)."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.test.client import ClientHandler, RequestFactory

from artifacts.models import Artifact

SIZE = 200 * 1024 * 1024
LIMIT_KB = 100 * 1024
ROOT = Path(__file__).resolve().parents[2]


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def reset_peak() -> int:
    """Resets the peak RSS to the current RSS and returns the current RSS (kB)."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS")


def peak_kb() -> int:
    return _status_kb("VmHWM")


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("big") / "big.bin"
    digest = hashlib.sha256()
    block = bytes(range(256)) * 4096  # 1 MB
    with open(path, "wb") as fh:
        for i in range(SIZE // len(block)):
            chunk = i.to_bytes(8, "big") + block[8:]  # no two megabytes alike
            digest.update(chunk)
            fh.write(chunk)
    return path, digest.hexdigest()


ANT_SCRIPT = r"""
import json, os, sys
from pathlib import Path
from types import SimpleNamespace
sys.path.insert(0, sys.argv[1])
from ants.artifact_hooks import install_artifact_hooks
from ants.artifact_store import store_from_config
from ants.executors.base import ExecutionResult
from ants.protocol import TaskRequest

def kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])

config, work, big = json.loads(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
worker = SimpleNamespace(config=SimpleNamespace(work_root=work), log_listeners=[])
hooks = install_artifact_hooks(worker, store_from_config(config))
up = TaskRequest(task_execution_id=1, job_request_id=1, task_type="make", organization_id="1",
                 spec={"artifacts": {"paths": ["big.bin"]}})
wd = work / "1-1"
wd.mkdir(parents=True)
os.link(big, wd / "big.bin")  # the task's output (a hard link: no time spent copying)
hooks.before(up, wd)
Path("/proc/self/clear_refs").write_text("5")
base = kb("VmRSS")
result = ExecutionResult()
hooks.after(up, wd, result)
(art,) = [a for a in result.artifacts if a["kind"] == "ARTIFACT"]
down = TaskRequest(task_execution_id=2, job_request_id=1, task_type="use", organization_id="1",
                   spec={"artifact_downloads": [{"kind": "ARTIFACT", "storage_key": art["storage_key"],
                         "name": "big.bin", "path": "in/big.bin", "sha256": art["sha256"]}]})
wd2 = work / "2-1"
wd2.mkdir()
hooks.before(down, wd2)
print(json.dumps({"base_kb": base, "peak_kb": kb("VmHWM"), "sha256": art["sha256"], "size": art["size"],
                  "downloaded": (wd2 / "in" / "big.bin").stat().st_size}))
"""


def test_ant_moves_200mb_with_bounded_memory(store, big_file, tmp_path):
    from artifacts.storage import ant_store_config

    path, sha = big_file
    out = subprocess.run(
        [sys.executable, "-c", ANT_SCRIPT, str(ROOT), json.dumps(ant_store_config()), str(tmp_path / "work"),
         str(path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    grown = report["peak_kb"] - report["base_kb"]
    print(
        f"ant: baseline {report['base_kb'] // 1024} MB, peak {report['peak_kb'] // 1024} MB, grew {grown // 1024} MB"
    )
    assert report["sha256"] == sha and report["size"] == SIZE and report["downloaded"] == SIZE
    assert grown < LIMIT_KB, f"the ant's RSS grew by {grown // 1024} MB"


def test_web_moves_200mb_with_bounded_memory(store, big_file, alice, api):
    path, sha = big_file
    with open(path, "rb") as body:
        environ = RequestFactory()._base_environ(
            PATH_INFO="/api/artifacts", QUERY_STRING="name=big.bin", REQUEST_METHOD="POST",
            CONTENT_TYPE="application/octet-stream", CONTENT_LENGTH=str(SIZE),
            HTTP_AUTHORIZATION=f"Bearer {alice.token}",
        )  # fmt: skip
        environ["wsgi.input"] = body  # streamed from disk, as a server hands it over
        base = reset_peak()
        response = ClientHandler(enforce_csrf_checks=False)(environ)
        up_peak = peak_kb()
    assert response.status_code == 201, response.content
    meta = json.loads(response.content)
    assert meta["size"] == SIZE and meta["sha256"] == sha

    base_down = reset_peak()
    download = api.get(f"/api/artifacts/{meta['id']}/download")
    digest, total = hashlib.sha256(), 0
    for chunk in download.streaming_content:
        digest.update(chunk)
        total += len(chunk)
    down_peak = peak_kb()
    print(f"web upload: baseline {base // 1024} MB, peak {up_peak // 1024} MB; "
          f"download: baseline {base_down // 1024} MB, peak {down_peak // 1024} MB")  # fmt: skip
    assert total == SIZE and digest.hexdigest() == sha
    assert up_peak - base < LIMIT_KB, f"upload grew RSS by {(up_peak - base) // 1024} MB"
    assert down_peak - base_down < LIMIT_KB, f"download grew RSS by {(down_peak - base_down) // 1024} MB"
    assert Artifact.objects.get(pk=meta["id"]).size == SIZE
