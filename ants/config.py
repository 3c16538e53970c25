"""Ant configuration: a dataclass loaded from a YAML file and/or environment variables.

Precedence: defaults < YAML file < environment (``FORMICARY_ANT_*``, plus ``REDIS_URL``) <
explicit keyword overrides (command line). Every problem raises ``ConfigError`` naming the
setting and where it came from.

Environment variables: FORMICARY_ANT_ID, FORMICARY_ANT_TAGS and FORMICARY_ANT_METHODS (comma
separated), FORMICARY_ANT_CONCURRENCY, FORMICARY_ANT_HEARTBEAT_SECS, FORMICARY_ANT_WORK_ROOT,
FORMICARY_ANT_DEFAULT_METHOD, FORMICARY_ANT_KEEP_WORKDIRS, FORMICARY_ANT_SHUTDOWN_GRACE_SECS,
FORMICARY_ANT_SHARED_SHELL, FORMICARY_ANT_REDIS_URL (or REDIS_URL), FORMICARY_ANT_PREFIX, FORMICARY_ANT_DOCKER and
FORMICARY_ANT_KUBERNETES (JSON objects), and one variable per DOCKER / KUBERNETES setting
(``DOCKER_ENV`` / ``KUBERNETES_ENV`` below, e.g. FORMICARY_ANT_DOCKER_HOST,
FORMICARY_ANT_KUBERNETES_NAMESPACE, FORMICARY_ANT_KUBECONFIG) merged into those mappings.
docs/ants.md lists them all with an example YAML file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ants.executors.isolation import SHARED_SHELL_SETTING, env_flag
from ants.methods import DEFAULT_ANT_METHODS

DEFAULT_METHODS = list(DEFAULT_ANT_METHODS)
ANT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
ENV_PREFIX = "FORMICARY_ANT_"
# Names accepted in YAML besides the field names (the reference's spelling).
ALIASES = {"id": "ant_id", "max_capacity": "concurrency", "redis": "redis_url"}

# One environment variable per executor setting: variable -> (path in the mapping, kind).
# Kinds: str, bool, float, list (comma separated), quantity (Kubernetes syntax: 500m, 2Gi).
DOCKER_ENV: dict[str, tuple[str, str]] = {
    "FORMICARY_ANT_DOCKER_HOST": ("host", "str"),
    "FORMICARY_ANT_DOCKER_TLS_CA_CERT": ("tls.ca_cert", "str"),
    "FORMICARY_ANT_DOCKER_TLS_CLIENT_CERT": ("tls.client_cert", "str"),
    "FORMICARY_ANT_DOCKER_TLS_CLIENT_KEY": ("tls.client_key", "str"),
    "FORMICARY_ANT_DOCKER_TLS_VERIFY": ("tls.verify", "bool"),
    "FORMICARY_ANT_DOCKER_REGISTRY": ("registry.server", "str"),
    "FORMICARY_ANT_DOCKER_REGISTRY_USERNAME": ("registry.username", "str"),
    "FORMICARY_ANT_DOCKER_REGISTRY_PASSWORD": ("registry.password", "str"),
    "FORMICARY_ANT_DOCKER_PULL_POLICY": ("pull_policy", "str"),
    "FORMICARY_ANT_DOCKER_NETWORK_MODE": ("network_mode", "str"),
    "FORMICARY_ANT_DOCKER_WORKING_DIR": ("working_dir", "str"),
    "FORMICARY_ANT_DOCKER_DEFAULT_IMAGE": ("default_image", "str"),
    "FORMICARY_ANT_DOCKER_DEFAULT_MEMORY_LIMIT": ("default_memory_limit", "quantity"),
    "FORMICARY_ANT_DOCKER_DEFAULT_CPU_LIMIT": ("default_cpu_limit", "quantity"),
    "FORMICARY_ANT_DOCKER_MAX_MEMORY_LIMIT": ("max_memory_limit", "quantity"),
    "FORMICARY_ANT_DOCKER_MAX_CPU_LIMIT": ("max_cpu_limit", "quantity"),
    "FORMICARY_ANT_DOCKER_ALLOW_PRIVILEGED": ("allow_privileged", "bool"),
    "FORMICARY_ANT_DOCKER_ALLOW_HOST_PATHS": ("allow_host_paths", "bool"),
    "FORMICARY_ANT_DOCKER_COPY_BACK": ("copy_back", "str"),
    "FORMICARY_ANT_DOCKER_API_TIMEOUT_SECS": ("api_timeout_secs", "float"),
}
KUBERNETES_ENV: dict[str, tuple[str, str]] = {
    "FORMICARY_ANT_KUBECONFIG": ("kubeconfig", "str"),
    "FORMICARY_ANT_KUBERNETES_CONTEXT": ("context", "str"),
    "FORMICARY_ANT_KUBERNETES_IN_CLUSTER": ("in_cluster", "bool"),
    "FORMICARY_ANT_KUBERNETES_HOST": ("host", "str"),
    "FORMICARY_ANT_KUBERNETES_TOKEN": ("token", "str"),
    "FORMICARY_ANT_KUBERNETES_CA_FILE": ("ca_file", "str"),
    "FORMICARY_ANT_KUBERNETES_VERIFY_SSL": ("verify_ssl", "bool"),
    "FORMICARY_ANT_KUBERNETES_NAMESPACE": ("namespace", "str"),
    "FORMICARY_ANT_KUBERNETES_PULL_POLICY": ("pull_policy", "str"),
    "FORMICARY_ANT_KUBERNETES_IMAGE_PULL_SECRETS": ("image_pull_secrets", "list"),
    "FORMICARY_ANT_KUBERNETES_SERVICE_ACCOUNT": ("service_account", "str"),
    "FORMICARY_ANT_KUBERNETES_ALLOW_PRIVILEGED": ("allow_privileged", "bool"),
    "FORMICARY_ANT_KUBERNETES_DEFAULT_CPU_LIMIT": ("default_resources.cpu_limit", "quantity"),
    "FORMICARY_ANT_KUBERNETES_DEFAULT_CPU_REQUEST": ("default_resources.cpu_request", "quantity"),
    "FORMICARY_ANT_KUBERNETES_DEFAULT_MEMORY_LIMIT": ("default_resources.memory_limit", "quantity"),
    "FORMICARY_ANT_KUBERNETES_DEFAULT_MEMORY_REQUEST": ("default_resources.memory_request", "quantity"),
    "FORMICARY_ANT_KUBERNETES_MAX_CPU_LIMIT": ("max_resources.cpu_limit", "quantity"),
    "FORMICARY_ANT_KUBERNETES_MAX_MEMORY_LIMIT": ("max_resources.memory_limit", "quantity"),
    "FORMICARY_ANT_KUBERNETES_START_TIMEOUT_SECS": ("start_timeout_secs", "float"),
    "FORMICARY_ANT_KUBERNETES_WATCH_SECS": ("watch_secs", "float"),
    "FORMICARY_ANT_KUBERNETES_TERMINATION_GRACE_SECS": ("termination_grace_secs", "float"),
    "FORMICARY_ANT_KUBERNETES_DEADLINE_SLACK_SECS": ("deadline_slack_secs", "float"),
    "FORMICARY_ANT_KUBERNETES_MAX_INPUT_BYTES": ("max_input_bytes", "float"),
    "FORMICARY_ANT_KUBERNETES_COPY_BACK": ("copy_back", "str"),
}
PULL_POLICIES = ("if_not_present", "always", "never")
NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
TRUE_WORDS = ("1", "true", "yes", "on")
BOOL_WORDS = TRUE_WORDS + ("0", "false", "no", "off")


class ConfigError(ValueError):
    """Invalid ant configuration."""


def _default_ant_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_.\-]", "-", socket.gethostname()) or "local"
    return f"ant-{host}"[:128]


@dataclass
class AntConfig:
    ant_id: str = field(default_factory=_default_ant_id)
    tags: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    concurrency: int = 2
    heartbeat_secs: float = 5.0
    work_root: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "formicary-ant")
    default_method: str = "SHELL"
    keep_workdirs: bool = False
    # None: wait for in-flight tasks forever on shutdown; else cancel them after this long.
    shutdown_grace_secs: float | None = None
    redis_url: str | None = None
    prefix: str = "formicary"
    # Opaque settings for the DOCKER / KUBERNETES executors (other modules interpret them).
    docker: dict[str, Any] = field(default_factory=dict)
    kubernetes: dict[str, Any] = field(default_factory=dict)
    # Set for an ant that serves one organization only (a WEBSOCKET ant a user connected); it
    # goes into every registration so the queen sends it that organization's tasks only.
    organization_id: str = ""
    # SHELL tasks on a shared ant (no organization_id) are refused unless an operator allows them
    # (FORMICARY_ANT_SHARED_SHELL=true; docs/security.md).
    shared_shell: bool = field(default_factory=lambda: env_flag(SHARED_SHELL_SETTING, False))

    def __post_init__(self) -> None:
        self.validate()

    # -- validation ----------------------------------------------------------------------------
    def validate(self, source: str = "config") -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"{source}: {name}: {why}")

        if not isinstance(self.ant_id, str) or not ANT_ID_RE.match(self.ant_id):
            raise bad("ant_id", f"{self.ant_id!r} must be 1-128 letters, digits, '_', '.' or '-'")
        for name in ("tags", "methods"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise bad(name, "must be a list of non-empty strings")
            setattr(self, name, [v.strip() for v in value])
        self.methods = [m.upper() for m in self.methods]
        if not self.methods:
            raise bad("methods", "at least one method is required")
        if (
            isinstance(self.concurrency, bool)
            or not isinstance(self.concurrency, int)
            or self.concurrency < 1
        ):
            raise bad("concurrency", f"{self.concurrency!r} must be an integer >= 1")
        if isinstance(self.heartbeat_secs, bool) or not isinstance(self.heartbeat_secs, int | float):
            raise bad("heartbeat_secs", "must be a number")
        if self.heartbeat_secs <= 0:
            raise bad("heartbeat_secs", "must be > 0")
        if self.shutdown_grace_secs is not None and (
            isinstance(self.shutdown_grace_secs, bool)
            or not isinstance(self.shutdown_grace_secs, int | float)
            or self.shutdown_grace_secs < 0
        ):
            raise bad("shutdown_grace_secs", "must be a number >= 0 or empty")
        if not isinstance(self.work_root, str | Path) or not str(self.work_root):
            raise bad("work_root", "must be a directory path")
        self.work_root = Path(self.work_root).expanduser()
        if not isinstance(self.default_method, str) or not self.default_method.strip():
            raise bad("default_method", "must be a method name")
        self.default_method = self.default_method.strip().upper()
        if not isinstance(self.shared_shell, bool):
            raise bad("shared_shell", "must be true or false")
        if not isinstance(self.keep_workdirs, bool):
            raise bad("keep_workdirs", "must be true or false")
        if self.redis_url is not None and not isinstance(self.redis_url, str):
            raise bad("redis_url", "must be a URL string")
        if not isinstance(self.prefix, str) or not self.prefix:
            raise bad("prefix", "must be a non-empty string")
        for name in ("docker", "kubernetes"):
            if not isinstance(getattr(self, name), dict):
                raise bad(name, "must be a mapping")
        _validate_docker(self.docker, bad)
        _validate_kubernetes(self.kubernetes, bad)
        if isinstance(self.organization_id, int) and not isinstance(self.organization_id, bool):
            self.organization_id = str(self.organization_id)
        if not isinstance(self.organization_id, str):
            raise bad("organization_id", "must be a string (empty: a shared ant)")

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], source: str = "config", base: AntConfig | None = None
    ) -> AntConfig:
        """Values from ``data`` on top of ``base`` (or defaults); unknown keys are errors."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = dataclasses.asdict(base) if base is not None else {}
        for key, value in data.items():
            name = ALIASES.get(key, key)
            if name not in names:
                raise ConfigError(f"{source}: unknown setting {key!r} (known: {', '.join(sorted(names))})")
            values[name] = value
        try:
            cfg = cls(**values)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("config:", f"{source}:", 1)) from None
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        return cfg

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, base: AntConfig | None = None) -> AntConfig:
        env = os.environ if environ is None else environ
        data: dict[str, Any] = {}

        def get(name: str) -> str | None:
            value = env.get(ENV_PREFIX + name)
            return value if value not in (None, "") else None

        def number(name: str, kind: type) -> Any:
            text = get(name)
            if text is None:
                return None
            try:
                return kind(text)
            except ValueError:
                raise ConfigError(
                    f"environment: {ENV_PREFIX}{name}: {text!r} is not a valid {kind.__name__}"
                ) from None

        def as_list(text: str) -> list[str]:
            return [v.strip() for v in text.split(",") if v.strip()]

        if (v := get("ID")) is not None:
            data["ant_id"] = v
        if (v := get("TAGS")) is not None:
            data["tags"] = as_list(v)
        if (v := get("METHODS")) is not None:
            data["methods"] = as_list(v)
        if (n := number("CONCURRENCY", int)) is not None:
            data["concurrency"] = n
        if (n := number("HEARTBEAT_SECS", float)) is not None:
            data["heartbeat_secs"] = n
        if (n := number("SHUTDOWN_GRACE_SECS", float)) is not None:
            data["shutdown_grace_secs"] = n
        if (v := get("WORK_ROOT")) is not None:
            data["work_root"] = v
        if (v := get("DEFAULT_METHOD")) is not None:
            data["default_method"] = v
        if (v := get("PREFIX")) is not None:
            data["prefix"] = v
        if (v := get("SHARED_SHELL")) is not None:
            if v.strip().lower() not in BOOL_WORDS:
                raise ConfigError(f"environment: {SHARED_SHELL_SETTING}: {v!r} is not a boolean (true/false)")
            data["shared_shell"] = v.strip().lower() in TRUE_WORDS
        if (v := get("KEEP_WORKDIRS")) is not None:
            low = v.strip().lower()
            if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ConfigError(f"environment: {ENV_PREFIX}KEEP_WORKDIRS: {v!r} is not a boolean")
            data["keep_workdirs"] = low in ("1", "true", "yes", "on")
        redis_url = get("REDIS_URL") or env.get("REDIS_URL") or None
        if redis_url:
            data["redis_url"] = redis_url
        origins: dict[str, str] = {}  # "docker.pull_policy" -> the variable that set it
        for name, table in (("DOCKER", DOCKER_ENV), ("KUBERNETES", KUBERNETES_ENV)):
            section = name.lower()
            merged: dict[str, Any] = _deep_copy(getattr(base, section) if base is not None else {})
            if (v := get(name)) is not None:
                try:
                    loaded = json.loads(v)
                except ValueError as exc:
                    raise ConfigError(f"environment: {ENV_PREFIX}{name}: not valid JSON: {exc}") from None
                if not isinstance(loaded, dict):
                    raise ConfigError(f"environment: {ENV_PREFIX}{name}: must be a JSON object")
                merged.update(loaded)
                origins.update({f"{section}.{k}": ENV_PREFIX + name for k in loaded})
            for var, (path, kind) in table.items():
                text = env.get(var)
                if not text:
                    continue
                _set_path(merged, path, _env_value(var, text, kind), var)
                origins[f"{section}.{path}"] = var
            if merged or get(name) is not None:
                data[section] = merged
        try:
            return cls.from_mapping(data, source="environment", base=base)
        except ConfigError as exc:
            raise ConfigError(_name_variable(str(exc), origins)) from None

    @classmethod
    def from_yaml(cls, path: str | Path, environ: Mapping[str, str] | None = None) -> AntConfig:
        """The YAML file (a mapping, optionally under an ``ant:`` key), then the environment."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from None
        if isinstance(data, dict) and isinstance(data.get("ant"), dict) and len(data) == 1:
            data = data["ant"]
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings")
        return cls.from_env(environ, base=cls.from_mapping(data, source=str(path)))

    def with_overrides(self, **overrides: Any) -> AntConfig:
        """Command-line values (None means "not given") on top of this config."""
        return AntConfig.from_mapping(
            {k: v for k, v in overrides.items() if v is not None}, source="arguments", base=self
        )


# -- executor settings ---------------------------------------------------------------------------


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data)) if data else {}


def _set_path(data: dict[str, Any], path: str, value: Any, var: str) -> None:
    *parents, last = path.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"environment: {var}: {part} is already set and is not a mapping")
        node = child
    node[last] = value


def _env_value(var: str, text: str, kind: str) -> Any:
    text = text.strip()
    if kind == "bool":
        if text.lower() not in BOOL_WORDS:
            raise ConfigError(f"environment: {var}: {text!r} is not a boolean (true/false)")
        return text.lower() in TRUE_WORDS
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"environment: {var}: {text!r} is not a number") from None
    if kind == "list":
        return [v.strip() for v in text.split(",") if v.strip()]
    return text


def _name_variable(message: str, origins: Mapping[str, str]) -> str:
    """``environment: docker.pull_policy: ...`` -> ``... docker.pull_policy (FORMICARY_ANT_DOCKER_PULL_POLICY)``."""
    for path in sorted(origins, key=len, reverse=True):
        marker = f": {path}:"
        if marker in message:
            return message.replace(marker, f": {path} ({origins[path]}):", 1)
    return message


def _pull_policy_ok(policy: Any) -> bool:
    """``if_not_present`` / ``always`` / ``never`` in any case, or the Kubernetes spelling."""
    if not isinstance(policy, str):
        return False
    return policy.lower().replace("-", "_") in PULL_POLICIES + ("ifnotpresent",)


def _check_quantity(value: Any, name: str, bad: Any) -> None:
    from ants.containers import QuantityError, parse_quantity

    try:
        if parse_quantity(value, name) <= 0:
            raise bad(name, f"{value!r} must be > 0")
    except QuantityError:
        raise bad(name, f"{value!r} is not a quantity (e.g. 500m, 2, 512Mi, 2Gi)") from None


def _check_common(section: str, cfg: Mapping[str, Any], bad: Any, numbers: tuple[str, ...]) -> None:
    for key in numbers:
        value = cfg.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
        ):
            raise bad(f"{section}.{key}", f"{value!r} must be a number > 0")
    for key in ("allow_privileged", "allow_host_paths", "in_cluster", "verify_ssl"):
        if key in cfg and not isinstance(cfg[key], bool):
            raise bad(f"{section}.{key}", f"{cfg[key]!r} must be true or false")
    for key in ("host", "kubeconfig", "context", "token", "ca_file", "network_mode", "working_dir",
                "default_image", "service_account"):  # fmt: skip
        if cfg.get(key) is not None and not isinstance(cfg[key], str):
            raise bad(f"{section}.{key}", "must be a string")
    labels = cfg.get("labels")
    if labels is not None and not isinstance(labels, dict):
        raise bad(f"{section}.labels", "must be a mapping of names to values")


def _validate_docker(cfg: Mapping[str, Any], bad: Any) -> None:
    _check_common("docker", cfg, bad, ("api_timeout_secs",))
    policy = cfg.get("pull_policy")
    if policy is not None and not _pull_policy_ok(policy):
        raise bad("docker.pull_policy", f"{policy!r} must be one of {', '.join(PULL_POLICIES)}")
    for key in ("default_memory_limit", "default_cpu_limit", "max_memory_limit", "max_cpu_limit"):
        if cfg.get(key) not in (None, ""):
            _check_quantity(cfg[key], f"docker.{key}", bad)
    if cfg.get("copy_back") not in (None, "declared", "all"):
        raise bad("docker.copy_back", f"{cfg['copy_back']!r} must be declared or all")
    tls = cfg.get("tls")
    if tls is not None:
        if not isinstance(tls, dict):
            raise bad("docker.tls", "must be a mapping (ca_cert, client_cert, client_key, verify)")
        if bool(tls.get("client_cert")) != bool(tls.get("client_key")):
            raise bad("docker.tls", "client_cert and client_key go together")
    registries = cfg.get("registries")
    entries = [("docker.registry", cfg["registry"])] if cfg.get("registry") is not None else []
    if registries is not None:
        if not isinstance(registries, list):
            raise bad("docker.registries", "must be a list of {server, username, password}")
        entries += [(f"docker.registries[{i}]", r) for i, r in enumerate(registries)]
    for where, reg in entries:
        if not isinstance(reg, dict):
            raise bad(where, "must be a mapping {server, username, password}")
        if reg.get("password") and not reg.get("username"):
            raise bad(f"{where}.username", "is required with a password")


def _validate_kubernetes(cfg: Mapping[str, Any], bad: Any) -> None:
    _check_common(
        "kubernetes", cfg, bad,
        ("start_timeout_secs", "watch_secs", "final_state_secs", "max_input_bytes"),
    )  # fmt: skip
    for key in ("termination_grace_secs", "deadline_slack_secs"):
        value = cfg.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise bad(f"kubernetes.{key}", f"{value!r} must be a number >= 0")
    ns = cfg.get("namespace")
    if ns is not None and (not isinstance(ns, str) or not NAMESPACE_RE.match(ns)):
        raise bad("kubernetes.namespace", f"{ns!r} is not a namespace name (lower-case letters, digits, '-')")
    policy = cfg.get("pull_policy")
    if policy is not None and not _pull_policy_ok(policy):
        raise bad("kubernetes.pull_policy", f"{policy!r} must be one of {', '.join(PULL_POLICIES)}")
    secrets = cfg.get("image_pull_secrets")
    if secrets is not None and (
        not isinstance(secrets, list) or not all(isinstance(x, str) for x in secrets)
    ):
        raise bad("kubernetes.image_pull_secrets", "must be a list of secret names")
    for group in ("default_resources", "max_resources"):
        values = cfg.get(group)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise bad(f"kubernetes.{group}", "must be a mapping like {cpu_limit: 500m, memory_limit: 1Gi}")
        for key, value in values.items():
            if value not in (None, ""):
                _check_quantity(value, f"kubernetes.{group}.{key}", bad)
    if cfg.get("copy_back") not in (None, "declared", "all"):
        raise bad("kubernetes.copy_back", f"{cfg['copy_back']!r} must be declared or all")
    if cfg.get("in_cluster") and cfg.get("host"):
        raise bad("kubernetes.in_cluster", "use either in_cluster or host, not both")
