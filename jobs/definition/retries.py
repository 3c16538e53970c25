"""How long a task or job waits before its next retry.

Without ``retry_backoff_policy`` it is the fixed ``delay_between_retries``. With one it is the
reference's exponential backoff (jpillora/backoff): ``min * factor ** n`` for the n-th retry
(n from 0), capped at ``max``, then moved by up to ±``jitter`` of itself (``jitter: true`` is
±50 %, a number 0..1 that fraction) and capped again.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from .durations import parse_duration

DEFAULT_MIN = 1.0  # seconds, the reference's default
DEFAULT_FACTOR = 2.0
JITTER_WHEN_TRUE = 0.5
# With no `max` the delay still has to fit a timestamp: 30 days is "no limit" in practice.
LONGEST_DELAY = 30 * 24 * 3600.0
POLICY_KEYS = ("min", "max", "factor", "jitter")


def read_policy(value: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A `retry_backoff_policy` mapping as written -> (policy with defaults, [(key, problem)])."""
    problems: list[tuple[str, str]] = []
    policy: dict[str, Any] = {"min": DEFAULT_MIN, "max": None, "factor": DEFAULT_FACTOR, "jitter": 0.0}
    for key, raw in value.items():
        name = str(key)
        if name not in POLICY_KEYS:
            problems.append((name, f"unknown key '{name}' (one of {', '.join(POLICY_KEYS)})"))
            continue
        if raw is None:
            continue
        try:
            policy[name] = _read(name, raw)
        except ValueError as exc:
            problems.append((name, str(exc)))
    if policy["max"] is not None and policy["max"] < policy["min"]:
        problems.append(("max", f"max ({policy['max']:g}s) is smaller than min ({policy['min']:g}s)"))
    return policy, problems


def _read(name: str, raw: Any) -> float:
    if name in ("min", "max"):
        seconds = parse_duration(raw)
        if seconds <= 0:
            raise ValueError(f"{name} must be a positive duration such as 500ms or 2m")
        return seconds
    if name == "factor":
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise ValueError(f"factor must be a number such as 2.0, got {raw!r}")
        try:
            factor = float(raw)
        except ValueError:
            raise ValueError(f"factor must be a number such as 2.0, got {raw!r}") from None
        if not factor > 0 or factor > 1000:
            raise ValueError(f"factor must be above 0 and at most 1000, got {raw!r}")
        return factor
    # jitter: true / false, or a fraction of the delay
    if isinstance(raw, bool):
        return JITTER_WHEN_TRUE if raw else 0.0
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return JITTER_WHEN_TRUE if raw.strip().lower() == "true" else 0.0
    try:
        fraction = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"jitter must be true, false or a fraction 0..1, got {raw!r}") from None
    if not 0 <= fraction <= 1:
        raise ValueError(f"jitter must be true, false or a fraction 0..1, got {raw!r}")
    return fraction


def retry_delay(
    policy: Mapping[str, Any] | None,
    fixed: float | None,
    retries_done: int,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds before the retry that follows ``retries_done`` earlier retries."""
    if not policy:
        return max(0.0, fixed or 0.0)
    low = float(policy.get("min") or DEFAULT_MIN)
    factor = float(policy.get("factor") or DEFAULT_FACTOR)
    high = min(float(policy.get("max") or LONGEST_DELAY), LONGEST_DELAY)
    try:
        delay = low * factor ** max(0, retries_done)
    except OverflowError:
        delay = high
    delay = min(delay, high)
    jitter = float(policy.get("jitter") or 0.0)
    if jitter:
        delay *= 1 + jitter * (2 * rand() - 1)
    return max(0.0, min(delay, high))
