"""Event triggers of a definition (``triggers:``): their checks at upload, and what an event does.

Pure: no Django, no I/O. The service (jobs/triggers/services.py) hands an event in as plain data
(``Body``/``Headers``/``Query`` for a webhook, ``Object`` for S3, ``Message`` for a queue) and gets
back a ``Decision``: fire with these params and user_key, or filtered and why.

A definition is itself a template rendered at upload, so a trigger's own templates are written
escaped, ``{{`{{ .Body.ref }}`}}``, to reach the event unrendered; one rendered away at upload
(``<no value>``) is an upload error that says so.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .durations import parse_duration
from .errors import Problem, TemplateError
from .template import compile_template, render

MAX_TRIGGERS = 5  # the reference's limit
KINDS = ("webhook", "s3", "queue")
AUTH_METHODS = ("hmac_sha256", "bearer_token", "api_key_header")
DEFAULT_HEADERS = {
    "hmac_sha256": "X-Signature-256",
    "bearer_token": "Authorization",
    "api_key_header": "X-API-Key",
}
DEFAULT_POLL_SECS = 60.0
MIN_POLL_SECS = 5.0
MAX_BODY_BYTES = 1024 * 1024
MAX_USER_KEY = 200  # JobRequest.user_key
_COMMON = {"name", "type", "filter", "params", "dedup_key", "rate_limit"}
_KEYS = {
    "webhook": _COMMON | {"auth"},
    "s3": _COMMON | {"bucket", "prefix", "suffix", "poll_interval"},
    "queue": _COMMON | {"topic", "group"},
}
_REQUIRED = {"webhook": ("auth",), "s3": ("bucket",), "queue": ("topic", "group")}
_UNRENDERED = "<no value>"


@dataclass(frozen=True)
class TriggerSpec:
    name: str
    type: str
    filter: str = ""
    params: dict[str, str] = field(default_factory=dict)
    dedup_key: str = ""
    rate_max: int = 0  # 0: no limit
    rate_window_secs: float = 0.0
    auth_method: str = ""
    secret_config: str = ""
    header: str = ""
    bucket: str = ""
    prefix: str = ""
    suffix: str = ""
    poll_interval_secs: float = DEFAULT_POLL_SECS
    topic: str = ""
    group: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TriggerSpec:
        """A trigger that passed ``trigger_problems``."""
        auth = d.get("auth") or {}
        rate = d.get("rate_limit") or {}
        method = str(auth.get("method", ""))
        return cls(
            name=str(d["name"]),
            type=str(d["type"]),
            filter=str(d.get("filter") or ""),
            params={str(k): str(v) for k, v in (d.get("params") or {}).items()},
            dedup_key=str(d.get("dedup_key") or ""),
            rate_max=int(rate.get("max", 0) or 0),
            rate_window_secs=parse_duration(rate["window"]) if rate.get("window") else 0.0,
            auth_method=method,
            secret_config=str(auth.get("secret_config", "")),
            header=str(auth.get("header") or DEFAULT_HEADERS.get(method, "")),
            bucket=str(d.get("bucket") or ""),
            prefix=str(d.get("prefix") or ""),
            suffix=str(d.get("suffix") or ""),
            poll_interval_secs=(
                max(MIN_POLL_SECS, parse_duration(d["poll_interval"]))
                if d.get("poll_interval")
                else DEFAULT_POLL_SECS
            ),
            topic=str(d.get("topic") or ""),
            group=str(d.get("group") or ""),
        )


def trigger_named(triggers: list[Mapping[str, Any]], name: str) -> TriggerSpec | None:
    for d in triggers or []:
        if isinstance(d, Mapping) and d.get("name") == name and d.get("type") in KINDS:
            return TriggerSpec.from_dict(d)
    return None


# ---------------------------------------------------------------- checks at upload


def trigger_problems(triggers: Sequence[Mapping[str, Any]]) -> list[Problem]:
    """Every problem of a definition's ``triggers``, each naming the trigger and its field."""
    out: list[Problem] = []
    if len(triggers) > MAX_TRIGGERS:
        out.append(
            Problem(f"a job has at most {MAX_TRIGGERS} triggers, not {len(triggers)}", field="triggers")
        )
    seen: set[str] = set()
    for i, d in enumerate(triggers):
        name = d.get("name")
        where = f"triggers[{name}]" if isinstance(name, str) and name else f"triggers[{i}]"

        def bad(key: str, message: str, where: str = where) -> None:
            out.append(Problem(message, field=f"{where}.{key}"))

        if not isinstance(name, str) or not name.strip():
            bad("name", "a trigger needs a name")
        elif name in seen:
            bad("name", f"two triggers are named {name!r}")
        else:
            seen.add(name)
            if "/" in name or len(name) > 100:
                bad("name", "at most 100 characters and no '/' (it is part of the trigger's URL)")
        kind = d.get("type")
        if kind not in KINDS:
            bad("type", f"must be one of {', '.join(KINDS)}, got {kind!r}")
            continue
        for key in sorted(str(k) for k in set(d) - _KEYS[kind]):
            bad(key, f"unknown key for a {kind} trigger (known: {', '.join(sorted(_KEYS[kind]))})")
        for key in _REQUIRED[kind]:
            if not d.get(key):
                bad(key, f"required for a {kind} trigger")
        if kind == "webhook" and d.get("auth"):
            out.extend(_auth_problems(d.get("auth"), where))
        out.extend(_template_problems(d, where))
        out.extend(_limit_problems(d, where))
    return out


def _auth_problems(auth: Any, where: str) -> list[Problem]:
    if not isinstance(auth, Mapping):
        return [Problem("must be a mapping {method, secret_config, header}", field=f"{where}.auth")]
    out = []
    if auth.get("method") not in AUTH_METHODS:
        out.append(
            Problem(
                f"must be one of {', '.join(AUTH_METHODS)}, got {auth.get('method')!r}",
                field=f"{where}.auth.method",
            )
        )
    if not auth.get("secret_config") or not isinstance(auth.get("secret_config"), str):
        out.append(
            Problem(
                "the name of the job config holding the secret is required",
                field=f"{where}.auth.secret_config",
            )
        )
    if auth.get("header") is not None and not isinstance(auth.get("header"), str):
        out.append(Problem("must be a header name", field=f"{where}.auth.header"))
    return out


def _template_problems(d: Mapping[str, Any], where: str) -> list[Problem]:
    texts: list[tuple[str, Any]] = [("filter", d.get("filter")), ("dedup_key", d.get("dedup_key"))]
    params = d.get("params")
    if params is not None and not isinstance(params, Mapping):
        return [Problem("must be a mapping of param name to template", field=f"{where}.params")]
    texts += [(f"params.{k}", v) for k, v in (params or {}).items()]
    out = []
    for key, text in texts:
        if text is None:
            continue
        if not isinstance(text, str | int | float | bool):
            out.append(Problem("must be a template (text)", field=f"{where}.{key}"))
            continue
        text = str(text)
        if _UNRENDERED in text:
            out.append(
                Problem(
                    "rendered away at upload (the definition is a template itself): escape the trigger's "
                    "template, e.g. {{`{{ .Body.ref }}`}}",
                    field=f"{where}.{key}",
                )
            )
            continue
        try:
            compile_template(text)
        except TemplateError as exc:
            out.append(Problem(f"template error: {exc.message}", field=f"{where}.{key}"))
    return out


def _limit_problems(d: Mapping[str, Any], where: str) -> list[Problem]:
    out = []
    rate = d.get("rate_limit")
    if rate is not None:
        if not isinstance(rate, Mapping):
            out.append(Problem("must be a mapping {max, window}", field=f"{where}.rate_limit"))
        else:
            if not isinstance(rate.get("max"), int) or isinstance(rate.get("max"), bool) or rate["max"] < 1:
                out.append(Problem("must be a whole number of at least 1", field=f"{where}.rate_limit.max"))
            out += _duration_problems(rate.get("window"), f"{where}.rate_limit.window", required=True)
    if d.get("poll_interval") is not None:
        out += _duration_problems(d.get("poll_interval"), f"{where}.poll_interval", required=True)
    return out


def _duration_problems(value: Any, field_name: str, *, required: bool) -> list[Problem]:
    if value is None:
        return [Problem("required (a duration such as 30s or 1m)", field=field_name)] if required else []
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        return [Problem(str(exc), field=field_name)]
    return [] if seconds > 0 else [Problem("must be positive", field=field_name)]


# ---------------------------------------------------------------- what an event does


@dataclass(frozen=True)
class Decision:
    fire: bool
    params: dict[str, str] = field(default_factory=dict)
    user_key: str = ""
    reason: str = ""  # why it did not fire


def evaluate(trigger: TriggerSpec, event: Mapping[str, Any]) -> Decision:
    """Filter, then params and dedup key, all rendered over ``event``. A template failing is a
    reason not to fire (recorded), never an exception."""
    try:
        if trigger.filter:
            verdict = render(trigger.filter, event).strip()
            if verdict != "true":
                return Decision(False, reason=f"filter rendered {verdict[:80]!r}, not 'true'")
        params = {}
        for name, text in trigger.params.items():
            try:
                params[name] = render(text, event)
            except TemplateError as exc:
                return Decision(False, reason=f"params.{name}: {exc}")
        user_key = render(trigger.dedup_key, event).strip() if trigger.dedup_key else ""
    except TemplateError as exc:
        return Decision(False, reason=f"filter or dedup_key: {exc}")
    if len(user_key) > MAX_USER_KEY:
        return Decision(False, reason=f"dedup_key: longer than {MAX_USER_KEY} characters")
    return Decision(True, params=params, user_key=user_key)


def webhook_event(body: bytes, headers: Mapping[str, str], query: Mapping[str, str]) -> dict[str, Any]:
    """``.Body`` is the JSON document when the body is JSON, else its text."""
    text = body.decode("utf-8", errors="replace")
    try:
        parsed: Any = json.loads(text) if text.strip() else {}
    except ValueError:
        parsed = text
    return {"Body": parsed, "Headers": dict(headers), "Query": dict(query)}


def hmac_sha256_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(signature: str, secret: str, body: bytes) -> bool:
    """``sha256=<hex>`` (GitHub's form) or the bare hex digest."""
    given = signature.strip()
    given = given[len("sha256=") :] if given.lower().startswith("sha256=") else given
    return bool(secret) and hmac.compare_digest(given.lower(), hmac_sha256_hex(secret, body))


def authorized(trigger: TriggerSpec, header_value: str, secret: str, body: bytes) -> bool:
    """Whether a webhook call carries the trigger's credential; an empty secret never matches."""
    if not secret or not header_value:
        return False
    if trigger.auth_method == "hmac_sha256":
        return signature_matches(header_value, secret, body)
    if trigger.auth_method == "bearer_token":
        scheme, _, token = header_value.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), secret.encode())
    if trigger.auth_method == "api_key_header":
        return hmac.compare_digest(header_value.strip().encode(), secret.encode())
    return False


# ---------------------------------------------------------------- GitHub post-commit


def github_push_params(payload: Any) -> tuple[dict[str, str] | None, str]:
    """The params a GitHub ``push`` starts a job with, or None and why it starts nothing."""
    if not isinstance(payload, Mapping):
        return None, "the push payload is not a JSON object"
    if payload.get("deleted") or set(str(payload.get("after", ""))) == {"0"}:
        return None, "a branch or tag was deleted"
    ref = str(payload.get("ref") or "")
    if not ref:
        return None, "the push has no ref"
    head, repo = payload.get("head_commit"), payload.get("repository")
    head, repo = (head if isinstance(head, Mapping) else {}), (repo if isinstance(repo, Mapping) else {})
    branch = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
    return {
        "GitBranch": branch,
        "GitCommitID": str(payload.get("after") or head.get("id") or ""),
        "GitCommitMessage": str(head.get("message") or ""),
        "GitRepository": str(repo.get("full_name") or repo.get("name") or ""),
    }, ""
