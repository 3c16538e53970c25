"""AntConfig loading/validation, and the ant side staying free of Django."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ants.config import AntConfig, ConfigError


def test_defaults_are_valid() -> None:
    cfg = AntConfig()
    assert cfg.ant_id.startswith("ant-") and cfg.concurrency >= 1 and "SHELL" in cfg.methods


def test_from_env() -> None:
    env = {
        "FORMICARY_ANT_ID": "ant-7",
        "FORMICARY_ANT_TAGS": "gpu, linux",
        "FORMICARY_ANT_METHODS": "shell,http_get",
        "FORMICARY_ANT_CONCURRENCY": "4",
        "FORMICARY_ANT_HEARTBEAT_SECS": "2.5",
        "FORMICARY_ANT_WORK_ROOT": "/tmp/x",
        "FORMICARY_ANT_KEEP_WORKDIRS": "yes",
        "FORMICARY_ANT_DOCKER": '{"host": "unix:///var/run/docker.sock"}',
        "REDIS_URL": "redis://r:6379/1",
    }
    cfg = AntConfig.from_env(env)
    assert cfg.ant_id == "ant-7" and cfg.tags == ["gpu", "linux"] and cfg.methods == ["SHELL", "HTTP_GET"]
    assert cfg.concurrency == 4 and cfg.heartbeat_secs == 2.5 and cfg.work_root == Path("/tmp/x")
    assert cfg.keep_workdirs is True and cfg.docker == {"host": "unix:///var/run/docker.sock"}
    assert cfg.redis_url == "redis://r:6379/1"


def test_yaml_then_env_then_overrides(tmp_path) -> None:
    path = tmp_path / "ant.yaml"
    path.write_text("ant:\n  id: from-file\n  max_capacity: 3\n  tags: [a]\n  kubernetes: {namespace: ci}\n")
    cfg = AntConfig.from_yaml(path, environ={"FORMICARY_ANT_CONCURRENCY": "5"})
    assert cfg.ant_id == "from-file" and cfg.concurrency == 5 and cfg.tags == ["a"]
    assert cfg.kubernetes == {"namespace": "ci"}
    cfg = cfg.with_overrides(ant_id="cli", concurrency=None)
    assert cfg.ant_id == "cli" and cfg.concurrency == 5


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("concurrency: 0\n", {}, "concurrency"),
        ("concurrency: two\n", {}, "concurrency"),
        ("heartbeat_secs: -1\n", {}, "heartbeat_secs"),
        ("ant_id: 'has space'\n", {}, "ant_id"),
        ("tags: gpu\n", {}, "tags"),
        ("bogus: 1\n", {}, "unknown setting 'bogus'"),
        ("[1, 2]\n", {}, "expected a mapping"),
        ("a: [\n", {}, "invalid YAML"),
        ("{}\n", {"FORMICARY_ANT_CONCURRENCY": "many"}, "FORMICARY_ANT_CONCURRENCY"),
        ("{}\n", {"FORMICARY_ANT_KEEP_WORKDIRS": "maybe"}, "KEEP_WORKDIRS"),
        ("{}\n", {"FORMICARY_ANT_DOCKER": "{"}, "FORMICARY_ANT_DOCKER"),
    ],
)
def test_errors_name_the_setting(tmp_path, text, env, message) -> None:
    path = tmp_path / "ant.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        AntConfig.from_yaml(path, environ=env)
    assert message in str(exc.value)


def test_ant_side_imports_no_django() -> None:
    code = (
        "import sys\n"
        "import ants.protocol, ants.config, ants.worker, ants.messaging, ants.messaging.redis_streams\n"
        "import ants.executors.shell, ants.executors.http\n"
        "bad = [m for m in sys.modules if m == 'django' or m.startswith('django.')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
