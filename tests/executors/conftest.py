"""Fixtures for the container executor tests.

DOCKER tests need a real engine: ``DOCKER_HOST`` when it answers (``scripts/test`` starts one with
``start_services docker``), else a throw-away ``dockerd`` started here (root only, same flags as
scripts/services.sh: no bridge, no iptables), else they are skipped. The test image is built
locally by ``scripts/test-images.sh`` with ``docker import`` (no registry is reachable).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEST_IMAGE = "formicary-test/busybox:latest"


def _engine_ok(host: str | None) -> bool:
    env = dict(os.environ)
    if host:
        env["DOCKER_HOST"] = host
    try:
        return subprocess.run(["docker", "version"], env=env, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def docker_host() -> Iterator[str]:
    host = os.environ.get("DOCKER_HOST")
    if shutil.which("docker") is None:
        pytest.skip("docker CLI not installed")
    if _engine_ok(host):
        yield host or "unix:///var/run/docker.sock"
        return
    if shutil.which("dockerd") is None or os.geteuid() != 0:
        pytest.skip("no Docker engine (set DOCKER_HOST or run as root with dockerd installed)")
    tmp = tempfile.mkdtemp(prefix="formicary-dockerd-")
    sock = f"unix://{tmp}/docker.sock"
    log = open(f"{tmp}/docker.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        ["dockerd", "--iptables=false", "--ip-masq=false", "--bridge=none", "--data-root", f"{tmp}/data",
         "--exec-root", f"{tmp}/exec", "--pidfile", f"{tmp}/docker.pid", "-H", sock],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _engine_ok(sock):
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.skip(f"dockerd did not start: see {tmp}/docker.log")
            time.sleep(0.3)
        yield sock
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_image(docker_host: str) -> str:
    env = dict(os.environ, DOCKER_HOST=docker_host)
    res = subprocess.run(
        [str(ROOT / "scripts" / "test-images.sh"), TEST_IMAGE], env=env, capture_output=True, text=True
    )
    if res.returncode != 0:
        pytest.skip(f"cannot build the test image: {res.stderr.strip()}")
    return TEST_IMAGE


@pytest.fixture(scope="session")
def docker_client(docker_host: str):  # type: ignore[no-untyped-def]
    import docker

    client = docker.DockerClient(base_url=docker_host, timeout=120)
    yield client
    client.close()
