"""Ant configuration: a dataclass loaded from a YAML file and/or environment variables.

Precedence: defaults < YAML file < environment (``FORMICARY_ANT_*``, plus ``REDIS_URL``) <
explicit keyword overrides (command line). Every problem raises ``ConfigError`` naming the
setting and where it came from.

Environment variables: FORMICARY_ANT_ID, FORMICARY_ANT_TAGS and FORMICARY_ANT_METHODS (comma
separated), FORMICARY_ANT_CONCURRENCY, FORMICARY_ANT_HEARTBEAT_SECS, FORMICARY_ANT_WORK_ROOT,
FORMICARY_ANT_DEFAULT_METHOD, FORMICARY_ANT_KEEP_WORKDIRS, FORMICARY_ANT_SHUTDOWN_GRACE_SECS,
FORMICARY_ANT_REDIS_URL (or REDIS_URL), FORMICARY_ANT_PREFIX, FORMICARY_ANT_DOCKER and
FORMICARY_ANT_KUBERNETES (JSON objects).
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

DEFAULT_METHODS = [
    "SHELL",
    "HTTP_GET",
    "HTTP_POST_FORM",
    "HTTP_POST_JSON",
    "HTTP_PUT_FORM",
    "HTTP_PUT_JSON",
    "HTTP_DELETE",
]
ANT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
ENV_PREFIX = "FORMICARY_ANT_"
# Names accepted in YAML besides the field names (the reference's spelling).
ALIASES = {"id": "ant_id", "max_capacity": "concurrency", "redis": "redis_url"}


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
        if not isinstance(self.keep_workdirs, bool):
            raise bad("keep_workdirs", "must be true or false")
        if self.redis_url is not None and not isinstance(self.redis_url, str):
            raise bad("redis_url", "must be a URL string")
        if not isinstance(self.prefix, str) or not self.prefix:
            raise bad("prefix", "must be a non-empty string")
        for name in ("docker", "kubernetes"):
            if not isinstance(getattr(self, name), dict):
                raise bad(name, "must be a mapping")
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
        if (v := get("KEEP_WORKDIRS")) is not None:
            low = v.strip().lower()
            if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ConfigError(f"environment: {ENV_PREFIX}KEEP_WORKDIRS: {v!r} is not a boolean")
            data["keep_workdirs"] = low in ("1", "true", "yes", "on")
        redis_url = get("REDIS_URL") or env.get("REDIS_URL") or None
        if redis_url:
            data["redis_url"] = redis_url
        for name in ("DOCKER", "KUBERNETES"):
            if (v := get(name)) is not None:
                try:
                    data[name.lower()] = json.loads(v)
                except ValueError as exc:
                    raise ConfigError(f"environment: {ENV_PREFIX}{name}: not valid JSON: {exc}") from None
        return cls.from_mapping(data, source="environment", base=base)

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
