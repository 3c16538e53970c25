"""Definition text -> JobSpec: render the template, read YAML safely, type-check every field, validate."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .durations import parse_duration
from .dynamic_tasks import dynamic_tasks_problems
from .errors import DefinitionError, DefinitionLimitError, Problem, TemplateError, TemplateLimitError
from .ignored_fields import ignored_field_warnings
from .model import DEFAULT_METHOD, JobSpec, TaskSpec, _plain
from .retries import read_policy
from .template import render_with_line_map
from .yamlsafe import load_yaml

MAX_TEXT = 1024 * 1024  # definitions are small; anything bigger is a mistake or an attack


def builtin_params(job_type: str = "", now: dt.datetime | None = None) -> dict[str, Any]:
    """The reference's built-in template variables, with upload-time placeholder values."""
    now = now or dt.datetime.now(dt.UTC)
    return {
        "JobID": 0,
        "JobType": job_type,
        "JobRetry": 0,
        "JobElapsedSecs": 0,
        "UserID": "",
        "OrganizationID": "",
        "DateYear": now.year,
        "DateMonth": now.month,
        "DateDay": now.day,
        "YearDay": now.timetuple().tm_yday,
        "FullDate": now.strftime("%Y-%m-%d"),
        "EpochSecs": int(now.timestamp()),
    }


def load_definition(
    text: str | bytes, data: Mapping[str, Any] | None = None, *, strict: bool = True
) -> JobSpec:
    """Render, parse and validate a definition. Raises DefinitionError listing every problem.

    strict=False turns unknown keys into `spec.warnings` instead of errors.
    """
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise DefinitionError(
                [Problem(f"definition is not UTF-8 text: {e.reason} at byte {e.start}")]
            ) from None
    if not isinstance(text, str):
        raise DefinitionError([Problem("definition must be text")])
    if len(text) > MAX_TEXT:
        raise DefinitionError([Problem(f"definition larger than {MAX_TEXT} characters")])
    if "\x00" in text:
        raise DefinitionError([Problem("definition contains a NUL character")])
    params = builtin_params() if data is None else data
    try:
        rendered, line_map = render_with_line_map(text, params)
    except TemplateLimitError as e:
        problem = Problem(f"template error: {e.message}", line=e.line or None)
        raise DefinitionLimitError([problem], e.limit) from None
    except TemplateError as e:
        raise DefinitionError([Problem(f"template error: {e.message}", line=e.line or None)]) from None
    if len(rendered) > MAX_TEXT:
        raise DefinitionError([Problem(f"rendered definition larger than {MAX_TEXT} characters")])
    key = (rendered, strict)
    spec = _parsed.get(key)
    if spec is not None:
        return spec
    value, problems = load_yaml(rendered, line_map)
    if value is None and problems:
        raise DefinitionError(problems)
    spec = _finish(value, problems, strict)
    with _parsed_lock:
        _parsed[key] = spec
        while len(_parsed) > PARSED_KEPT:
            del _parsed[next(iter(_parsed))]
    return spec


# Specs of recently rendered texts: a job's start and each of its tasks' dispatches render the
# same text when the template reads nothing that changed meanwhile, and reading YAML and
# checking it was most of a templated render's time. Specs are read-only for their callers
# (a static definition's spec is shared by all its jobs already).
PARSED_KEPT = 256
_parsed: dict[tuple[str, bool], JobSpec] = {}
_parsed_lock = threading.Lock()


# the flag as written, for when the definition does not parse (the problems are listed together)
_DYNAMIC_FLAG = re.compile(r"(?m)^dynamic_template_tasks[ \t]*:[ \t]*['\"]?true\b")


def load_upload(text: str) -> JobSpec:
    """``load_definition`` plus what only an upload checks (stored versions keep running):
    a `range` that generates tasks needs `dynamic_template_tasks: true`."""
    try:
        spec = load_definition(text)
    except DefinitionError as exc:
        flag = bool(_DYNAMIC_FLAG.search(text))
        raise DefinitionError(exc.problems + dynamic_tasks_problems(text, flag)) from None
    problems = dynamic_tasks_problems(text, spec.dynamic_template_tasks)
    if problems:
        raise DefinitionError(problems)
    return spec


def spec_from_dict(data: Mapping[str, Any], *, strict: bool = True) -> JobSpec:
    """Build and validate a spec from an already-parsed mapping (e.g. a JSON request body)."""
    return _finish(data, [], strict)


def _finish(value: Any, problems: list[Problem], strict: bool) -> JobSpec:
    from .validate import validate

    builder = _Builder()
    spec = builder.job(value)
    problems = problems + builder.problems
    if spec is not None:
        problems += validate(spec)
        if strict:
            problems += builder.unknown
        else:
            spec.warnings = builder.unknown
        spec.warnings = [*spec.warnings, *ignored_field_warnings(spec)]
    if problems or spec is None:
        raise DefinitionError(problems or [Problem("empty definition")])
    return spec


# ---------------------------------------------------------------- field readers


def _is_scalar(v: Any) -> bool:
    return not isinstance(v, Mapping | list | tuple)


def _scalar_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _line(m: Any, key: str | None = None) -> int | None:
    if key is not None:
        line = getattr(m, "lines", {}).get(key)
        if line:
            return int(line)
    return getattr(m, "line", None)


def _text(m: Any, key: str) -> str:
    """A scalar value as the user wrote it: `on` stays "on", `1` stays "1"."""
    texts = getattr(m, "texts", {})
    return str(texts[key]) if key in texts else _scalar_text(m[key])


class _Builder:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.unknown: list[Problem] = []
        self.task_name: str | None = None

    def bad(self, m: Any, key: str, message: str) -> None:
        self.problems.append(Problem(message, task=self.task_name, field=key, line=_line(m, key)))

    # -- readers: each takes the mapping and key, reports problems, and returns a usable value

    def r_str(self, m: Any, key: str) -> str | None:
        v = m[key]
        if v is None:
            return None
        if not _is_scalar(v):
            self.bad(m, key, "expected text")
            return None
        return _text(m, key).strip() if isinstance(v, str) else _text(m, key)

    def r_bool(self, m: Any, key: str) -> bool:
        v = m[key]
        if v is None:
            return False
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.strip().lower() in ("true", "false"):
            return v.strip().lower() == "true"
        self.bad(m, key, f"expected true or false, got '{_scalar_text(v)[:40]}'")
        return False

    def r_int(self, m: Any, key: str) -> int | None:
        v = m[key]
        if v is None:
            return None
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, str):
            try:
                return int(v.strip())
            except ValueError:
                pass
        self.bad(m, key, f"expected a whole number, got '{_scalar_text(v)[:40]}'")
        return None

    def r_duration(self, m: Any, key: str) -> float | None:
        v = m[key]
        if v is None:
            return None
        try:
            return parse_duration(v)
        except ValueError as e:
            self.bad(m, key, str(e))
            return None

    def r_strlist(self, m: Any, key: str) -> list[str]:
        v = m[key]
        if v is None:
            return []
        if not isinstance(v, list):
            self.bad(m, key, "expected a list of text")
            return []
        out = []
        texts = getattr(v, "texts", [None] * len(v))
        lines = getattr(v, "lines", [None] * len(v))
        for i, item in enumerate(v):
            if not _is_scalar(item):
                line = lines[i] if i < len(lines) else None
                hint = " (quote it: 'a: b' reads as a mapping)" if isinstance(item, Mapping) else ""
                self.problems.append(
                    Problem(
                        f"item {i + 1} must be text{hint}",
                        task=self.task_name,
                        field=key,
                        line=line or _line(m, key),
                    )
                )
                continue
            text = texts[i] if i < len(texts) and texts[i] is not None else _scalar_text(item)
            out.append(text)
        return out

    def r_strmap(self, m: Any, key: str) -> dict[str, str]:
        v = m[key]
        if v is None:
            return {}
        if not isinstance(v, Mapping):
            self.bad(m, key, "expected a mapping of names to text")
            return {}
        out = {}
        for k, item in v.items():
            if not _is_scalar(item):
                self.problems.append(
                    Problem(f"value of '{k}' must be text", task=self.task_name, field=key, line=_line(v, k))
                )
                continue
            out[str(k)] = _text(v, k)
        return out

    def r_vars(self, m: Any, key: str) -> dict[str, Any]:
        v = m[key]
        if v is None:
            return {}
        if not isinstance(v, Mapping):
            self.bad(m, key, "expected a mapping of names to values")
            return {}
        return {str(k): (_text(v, k) if _is_scalar(x) else _plain(x)) for k, x in v.items()}

    def r_exitmap(self, m: Any, key: str) -> dict[str, str]:
        v = m[key]
        if v is None:
            return {}
        if not isinstance(v, Mapping):
            self.bad(m, key, "expected a mapping of exit codes to next tasks")
            return {}
        out = {}
        for k, target in v.items():
            code = str(k).strip().upper()
            if not _is_scalar(target) or target is None or not _text(v, k).strip():
                self.problems.append(
                    Problem(
                        f"exit code '{k}' needs a target task or state",
                        task=self.task_name,
                        field=key,
                        line=_line(v, k),
                    )
                )
                continue
            out[code] = _text(v, k).strip()
        return out

    def r_float(self, m: Any, key: str) -> float | None:
        v = m[key]
        if v is None:
            return None
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
        if isinstance(v, str):
            try:
                return float(v.strip())
            except ValueError:
                pass
        self.bad(m, key, f"expected a number, got '{_scalar_text(v)[:40]}'")
        return None

    def r_names(self, m: Any, key: str) -> list[str]:
        """A list of names, or the reference's comma-separated text of them (job `methods`)."""
        v = m[key]
        if isinstance(v, str):
            return [part.strip() for part in v.split(",") if part.strip()]
        return self.r_strlist(m, key)

    def r_backoff(self, m: Any, key: str) -> dict[str, Any]:
        v = self.r_map(m, key)
        if not v:
            return {}
        policy, problems = read_policy(v)
        for sub, message in problems:
            self.problems.append(
                Problem(
                    message, task=self.task_name, field=f"{key}.{sub}", line=_line(v, sub) or _line(m, key)
                )
            )
        return policy

    def r_map(self, m: Any, key: str) -> dict[str, Any]:
        v = m[key]
        if v is None:
            return {}
        if not isinstance(v, Mapping):
            self.bad(m, key, "expected a mapping")
            return {}
        return v  # type: ignore[return-value]  # parsed documents' mappings are dicts (LDict)

    def r_maplist(self, m: Any, key: str) -> list[dict[str, Any]]:
        v = m[key]
        if v is None:
            return []
        if not isinstance(v, list) or not all(isinstance(x, Mapping) for x in v):
            self.bad(m, key, "expected a list of mappings")
            return []
        return list(v)

    def r_files(self, m: Any, key: str) -> dict[str, Any]:
        """`cache` / `artifacts`: known sub-keys typed, others kept."""
        v = self.r_map(m, key)
        if not v:
            return {}
        out: dict[str, Any] = dict(v)
        for sub, reader in (
            ("paths", self.r_strlist),
            ("key_paths", self.r_strlist),
            ("expires_after", self.r_duration),
            ("key", self.r_str),
            ("when", self.r_str),
        ):
            if sub in v:
                out[sub] = reader(v, sub)
        return out

    # -- the two levels

    def fill(
        self, target: Any, m: Mapping[str, Any], table: dict[str, tuple[str, Callable[..., Any]]], skip: str
    ) -> None:
        for key in m:
            if key == skip:
                continue
            spec = table.get(str(key))
            if spec is None:
                self.unknown.append(Problem(f"unknown key '{key}'", task=self.task_name, line=_line(m, key)))
                continue
            attr, reader = spec
            value = reader(self, m, key)
            if value is not None:
                setattr(target, attr, value)

    def job(self, value: Any) -> JobSpec | None:
        if value is None:
            self.problems.append(Problem("empty definition"))
            return None
        if not isinstance(value, Mapping):
            self.problems.append(
                Problem("definition must be a mapping of keys (job_type, tasks, ...)", line=_line(value))
            )
            return None
        job_type = self.r_str(value, "job_type") if "job_type" in value else None
        spec = JobSpec(job_type=job_type or "", raw=value if isinstance(value, dict) else dict(value))
        rest = {k: value[k] for k in value if k not in ("tasks", "filter")}
        fields = _LocatedView(value, rest)
        self.fill(spec, fields, JOB_FIELDS, "job_type")
        if "filter" in value and "skip_if" not in value:  # the reference's older name for skip_if
            spec.skip_if = self.r_str(value, "filter")
        spec.tags = [t.lower() for t in spec.tags]
        if "tasks" not in value:
            return spec
        tasks = value["tasks"]
        if tasks is None:
            return spec
        if not isinstance(tasks, list):
            self.bad(value, "tasks", "expected a list of tasks")
            return spec
        lines = getattr(tasks, "lines", [None] * len(tasks))
        for i, item in enumerate(tasks):
            if not isinstance(item, Mapping):
                self.problems.append(Problem(f"task {i + 1} must be a mapping", field="tasks", line=lines[i]))
                continue
            spec.tasks.append(self.task(item, i))
        return spec

    def task(self, m: Mapping[str, Any], index: int) -> TaskSpec:
        name = self.r_str(m, "task_type") if "task_type" in m else None
        self.task_name = name or f"#{index + 1}"
        task = TaskSpec(task_type=name or "", raw=m if isinstance(m, dict) else dict(m), line=_line(m))
        self.fill(task, m, TASK_FIELDS, "task_type")
        task.method_given = "method" in m and bool(task.method)
        if not task.method_given:
            task.method = DEFAULT_METHOD
        task.tags = [t.lower() for t in task.tags]  # the reference lower-cases tags
        self.task_name = None
        return task


class _LocatedView(dict[str, Any]):
    """A subset of a located mapping that still answers line/text questions."""

    def __init__(self, source: Any, items: dict[str, Any]) -> None:
        super().__init__(items)
        self.line = getattr(source, "line", None)
        self.lines = getattr(source, "lines", {})
        self.texts = getattr(source, "texts", {})


_B = _Builder
JOB_FIELDS: dict[str, tuple[str, Callable[..., Any]]] = {
    "job_type": ("job_type", _B.r_str),
    "description": ("description", _B.r_str),
    "url": ("url", _B.r_str),
    "platform": ("platform", _B.r_str),
    "max_concurrency": ("max_concurrency", _B.r_int),
    "required_params": ("required_params", _B.r_strlist),
    "cron_trigger": ("cron_trigger", _B.r_str),
    "skip_if": ("skip_if", _B.r_str),
    "retry": ("retry", _B.r_int),
    "delay_between_retries": ("delay_between_retries", _B.r_duration),
    "hard_reset_after_retries": ("hard_reset_after_retries", _B.r_int),
    "timeout": ("timeout", _B.r_duration),
    "public_plugin": ("public_plugin", _B.r_bool),
    "sem_version": ("sem_version", _B.r_str),
    "job_variables": ("job_variables", _B.r_vars),
    "tags": ("tags", _B.r_strlist),
    "resources": ("resources", _B.r_map),
    "notify": ("notify", _B.r_map),
    "methods": ("methods", _B.r_names),
    "retry_backoff_policy": ("retry_backoff_policy", _B.r_backoff),
    "dynamic_template_tasks": ("dynamic_template_tasks", _B.r_bool),
    "webhook": ("webhook", _B.r_map),
    "triggers": ("triggers", _B.r_maplist),
}

TASK_FIELDS: dict[str, tuple[str, Callable[..., Any]]] = {
    "task_type": ("task_type", _B.r_str),
    "method": ("method", _B.r_str),
    "description": ("description", _B.r_str),
    "on_completed": ("on_completed", _B.r_str),
    "on_failed": ("on_failed", _B.r_str),
    "on_exit_code": ("on_exit_code", _B.r_exitmap),
    "environment": ("environment", _B.r_strmap),
    "variables": ("variables", _B.r_vars),
    "before_script": ("before_script", _B.r_strlist),
    "script": ("script", _B.r_strlist),
    "after_script": ("after_script", _B.r_strlist),
    "timeout": ("timeout", _B.r_duration),
    "retry": ("retry", _B.r_int),
    "delay_between_retries": ("delay_between_retries", _B.r_duration),
    "cache": ("cache", _B.r_files),
    "artifacts": ("artifacts", _B.r_files),
    "url": ("url", _B.r_str),
    "headers": ("headers", _B.r_strmap),
    "query": ("query", _B.r_strmap),
    "dependencies": ("dependencies", _B.r_strlist),
    "artifact_ids": ("artifact_ids", _B.r_strlist),
    "dependent_artifact_ids": ("dependent_artifact_ids", _B.r_strlist),
    "except": ("except_", _B.r_str),
    "allow_failure": ("allow_failure", _B.r_bool),
    "allow_start_if_completed": ("allow_start_if_completed", _B.r_bool),
    "always_run": ("always_run", _B.r_bool),
    "tags": ("tags", _B.r_strlist),
    "webhook": ("webhook", _B.r_map),
    "services": ("services", _B.r_maplist),
    "notify": ("notify", _B.r_map),
    "fork_job_type": ("fork_job_type", _B.r_str),
    "fork_job_version": ("fork_job_version", _B.r_str),
    "await_forked_tasks": ("await_forked_tasks", _B.r_strlist),
    "messaging_request_queue": ("messaging_request_queue", _B.r_str),
    "messaging_reply_queue": ("messaging_reply_queue", _B.r_str),
    "container": ("container", _B.r_map),
    "helper": ("helper", _B.r_map),
    "working_dir": ("working_dir", _B.r_str),
    "artifacts_dir": ("artifacts_dir", _B.r_str),
    "cache_dir": ("cache_dir", _B.r_str),
    "privileged": ("privileged", _B.r_bool),
    "pod_labels": ("pod_labels", _B.r_strmap),
    "pod_annotations": ("pod_annotations", _B.r_strmap),
    "node_selector": ("node_selector", _B.r_strmap),
    "affinity": ("affinity", _B.r_map),
    "node_tolerations": ("tolerations", _B.r_strmap),
    "tolerations": ("tolerations", _B.r_strmap),
    "host_network": ("host_network", _B.r_bool),
    "network_mode": ("network_mode", _B.r_str),
    "service_account": ("service_account", _B.r_str),
    "report_stdout": ("report_stdout", _B.r_bool),
    "execute_command_without_shell": ("execute_command_without_shell", _B.r_bool),
    "debug": ("debug", _B.r_bool),
    "resources": ("resources", _B.r_map),
    "pause_time": ("pause_time", _B.r_duration),
    "job_version": ("job_version", _B.r_str),
    "fan_out": ("fan_out", _B.r_map),
    "sub_workflow": ("sub_workflow", _B.r_map),
    "helper_environment": ("helper_environment", _B.r_strmap),
    "cost_factor": ("cost_factor", _B.r_float),
    "artifact_key_prefix": ("artifact_key_prefix", _B.r_str),
    "retry_backoff_policy": ("retry_backoff_policy", _B.r_backoff),
    "approval_policy": ("approval_policy", _B.r_map),
}
