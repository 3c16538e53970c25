"""Go time.ParseDuration syntax ("1h30m", "500ms", "-1.5s"); a plain number means seconds."""

from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_MAX_SECONDS = 9.3e9  # Go's Duration is int64 nanoseconds: about 292 years


def parse_duration(value: object) -> float:
    """Seconds as float; raises ValueError with a readable message."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(value.strip())
    else:
        raise ValueError(f"invalid duration {value!r}")
    if seconds != seconds or abs(seconds) > _MAX_SECONDS:
        raise ValueError(f"invalid duration {value!r}")
    return seconds


def _parse_text(s: str) -> float:
    if not s:
        raise ValueError("empty duration")
    try:
        return float(s)  # "30" or "1.5": seconds
    except ValueError:
        pass
    sign = -1.0 if s[0] == "-" else 1.0
    body = s[1:] if s[0] in "+-" else s
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        m = _PART.match(body, pos)
        if not m:
            raise ValueError(f"invalid duration {s!r} (use e.g. 15s, 1m30s, 2h, 500ms)")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not body:
        raise ValueError(f"invalid duration {s!r}")
    return sign * total


def format_duration(seconds: float) -> str:
    """Short Go-like text for display: 90 -> "1m30s"."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    whole = int(seconds)
    if whole != seconds or seconds < 1:
        return f"{seconds:g}s"
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    out = (
        (f"{h}h" if h else "") + (f"{m}m" if m or (h and s) else "") + (f"{s}s" if s or not (h or m) else "")
    )
    return out


_AGE = re.compile(r"(\d+(?:\.\d+)?)(w|d|h|m|s)")
_AGE_UNITS = {"w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_MAX_AGE_SECONDS = 100 * 365 * 86400.0


def parse_age(value: str) -> float:
    """An age such as ``90d``, ``12w``, ``36h`` or ``1d12h``, in seconds (more than 0, at most
    100 years); raises ValueError with a readable message. Retention counts in days, so ``d``
    and ``w`` are accepted besides the Go units."""
    text = value.strip().lower()
    pos, total = 0, 0.0
    while pos < len(text):
        m = _AGE.match(text, pos)
        if not m:
            break
        total += float(m.group(1)) * _AGE_UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"invalid age {value!r}: use a number and a unit, e.g. 90d, 12w, 36h or 1d12h")
    if total <= 0:
        raise ValueError(f"invalid age {value!r}: must be more than 0")
    if total > _MAX_AGE_SECONDS:
        raise ValueError(f"invalid age {value!r}: at most 100 years")
    return total
