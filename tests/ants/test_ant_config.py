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
        "import ants.messaging.sealing, ants.executors.shell, ants.executors.http, ants.executors.messaging\n"
        "import ants.methods, ants.artifact_store, ants.artifact_hooks, ants.containers, ants.executors.docker\n"
        "import ants.executors.kubernetes\n"
        "top = ('django', 'jobs', 'orgs', 'artifacts', 'formicary_site', 'rest_framework', 'channels')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in top]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


# -- DOCKER / KUBERNETES settings from the environment -------------------------------------------


def test_executor_settings_from_env_merge_over_the_yaml_file(tmp_path) -> None:
    path = tmp_path / "ant.yaml"
    path.write_text(
        "docker:\n  host: tcp://file:2375\n  network_mode: none\n  registry: {server: r.example, username: u}\n"
        "kubernetes:\n  namespace: ci\n  default_resources: {cpu_limit: 1}\n"
    )
    env = {
        "FORMICARY_ANT_DOCKER_HOST": "unix:///tmp/d.sock",
        "FORMICARY_ANT_DOCKER_REGISTRY_PASSWORD": "s3cret",
        "FORMICARY_ANT_DOCKER_PULL_POLICY": "always",
        "FORMICARY_ANT_DOCKER_MAX_MEMORY_LIMIT": "2Gi",
        "FORMICARY_ANT_DOCKER_ALLOW_PRIVILEGED": "false",
        "FORMICARY_ANT_DOCKER_API_TIMEOUT_SECS": "60",
        "FORMICARY_ANT_DOCKER_TLS_VERIFY": "no",
        "FORMICARY_ANT_KUBERNETES_NAMESPACE": "builds",
        "FORMICARY_ANT_KUBECONFIG": "/etc/kube/config",
        "FORMICARY_ANT_KUBERNETES_IMAGE_PULL_SECRETS": "regcred, other",
        "FORMICARY_ANT_KUBERNETES_DEFAULT_MEMORY_LIMIT": "512Mi",
        "FORMICARY_ANT_KUBERNETES_MAX_CPU_LIMIT": "4",
        "FORMICARY_ANT_KUBERNETES_PULL_POLICY": "IfNotPresent",
    }
    cfg = AntConfig.from_yaml(path, environ=env)
    assert cfg.docker == {
        "host": "unix:///tmp/d.sock",
        "network_mode": "none",
        "registry": {"server": "r.example", "username": "u", "password": "s3cret"},
        "pull_policy": "always",
        "max_memory_limit": "2Gi",
        "allow_privileged": False,
        "api_timeout_secs": 60.0,
        "tls": {"verify": False},
    }
    assert cfg.kubernetes == {
        "namespace": "builds",
        "kubeconfig": "/etc/kube/config",
        "image_pull_secrets": ["regcred", "other"],
        "default_resources": {"cpu_limit": 1, "memory_limit": "512Mi"},
        "max_resources": {"cpu_limit": "4"},
        "pull_policy": "IfNotPresent",
    }


def test_executor_json_and_single_variables_combine() -> None:
    env = {
        "FORMICARY_ANT_DOCKER": '{"host": "tcp://json:2375", "copy_back": "all"}',
        "FORMICARY_ANT_DOCKER_HOST": "tcp://var:2375",
    }
    cfg = AntConfig.from_env(env)
    assert cfg.docker == {"host": "tcp://var:2375", "copy_back": "all"}
    assert AntConfig.from_env({}).docker == {} and AntConfig.from_env({}).kubernetes == {}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"FORMICARY_ANT_DOCKER_PULL_POLICY": "sometimes"},
            "docker.pull_policy (FORMICARY_ANT_DOCKER_PULL_POLICY)",
        ),
        ({"FORMICARY_ANT_DOCKER_MAX_MEMORY_LIMIT": "lots"}, "FORMICARY_ANT_DOCKER_MAX_MEMORY_LIMIT"),
        ({"FORMICARY_ANT_DOCKER_DEFAULT_CPU_LIMIT": "0"}, "docker.default_cpu_limit"),
        ({"FORMICARY_ANT_DOCKER_ALLOW_PRIVILEGED": "perhaps"}, "FORMICARY_ANT_DOCKER_ALLOW_PRIVILEGED"),
        ({"FORMICARY_ANT_DOCKER_API_TIMEOUT_SECS": "soon"}, "FORMICARY_ANT_DOCKER_API_TIMEOUT_SECS"),
        ({"FORMICARY_ANT_DOCKER_API_TIMEOUT_SECS": "-1"}, "docker.api_timeout_secs"),
        ({"FORMICARY_ANT_DOCKER_COPY_BACK": "some"}, "docker.copy_back"),
        ({"FORMICARY_ANT_DOCKER_REGISTRY_PASSWORD": "x"}, "docker.registry.username"),
        ({"FORMICARY_ANT_DOCKER_TLS_CLIENT_CERT": "/c.pem"}, "docker.tls"),
        (
            {"FORMICARY_ANT_KUBERNETES_NAMESPACE": "Not_Valid"},
            "kubernetes.namespace (FORMICARY_ANT_KUBERNETES_NAMESPACE)",
        ),
        ({"FORMICARY_ANT_KUBERNETES_MAX_MEMORY_LIMIT": "big"}, "kubernetes.max_resources.memory_limit"),
        ({"FORMICARY_ANT_KUBERNETES_PULL_POLICY": "maybe"}, "kubernetes.pull_policy"),
        ({"FORMICARY_ANT_KUBERNETES_WATCH_SECS": "0"}, "kubernetes.watch_secs"),
        (
            {"FORMICARY_ANT_KUBERNETES_IN_CLUSTER": "1", "FORMICARY_ANT_KUBERNETES_HOST": "https://k"},
            "in_cluster",
        ),
        ({"FORMICARY_ANT_DOCKER": "[1]"}, "must be a JSON object"),
        ({"FORMICARY_ANT_DOCKER": '{"pull_policy": "x"}'}, "docker.pull_policy (FORMICARY_ANT_DOCKER)"),
    ],
)
def test_executor_setting_errors_name_the_setting_and_variable(env, message) -> None:
    with pytest.raises(ConfigError) as exc:
        AntConfig.from_env(env)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("docker: {pull_policy: later}\n", "docker.pull_policy"),
        ("docker: {registries: [{password: p}]}\n", "docker.registries[0].username"),
        ("docker: {labels: [a]}\n", "docker.labels"),
        ("kubernetes: {namespace: 'UPPER'}\n", "kubernetes.namespace"),
        ("kubernetes: {default_resources: {cpu_limit: many}}\n", "kubernetes.default_resources.cpu_limit"),
        ("kubernetes: {image_pull_secrets: regcred}\n", "kubernetes.image_pull_secrets"),
        ("kubernetes: {verify_ssl: 'no'}\n", "kubernetes.verify_ssl"),
    ],
)
def test_executor_setting_errors_in_yaml(tmp_path, text, message) -> None:
    path = tmp_path / "ant.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        AntConfig.from_yaml(path, environ={})
    assert message in str(exc.value) and str(path) in str(exc.value)


def test_ant_command_help_points_at_the_settings() -> None:
    from ants.management.commands.ant import Command

    text = Command().create_parser("manage.py", "ant").format_help()
    assert "docs/ants.md" in text and "FORMICARY_ANT_" in text
