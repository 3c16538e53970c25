"""Cron expressions as the reference writes them (seconds first: ``0 * * * * * *``, 6 or 7
fields, the 7th a year) and the standard 5-field form. Pure Python (croniter), no Django."""

from datetime import UTC, datetime

from croniter import croniter

from jobs.definition.durations import parse_duration


class CronError(ValueError):
    pass


def _parts(expr: str) -> tuple[str, bool]:
    text = " ".join(expr.split())
    if text.startswith("@"):
        return text, False
    count = len(text.split(" "))
    if count == 5:
        return text, False
    if count in (6, 7):
        return text, True
    raise CronError(f"cron expression {expr!r} has {count} fields; expected 5, 6 or 7")


def _iter(expr: str, base: datetime) -> croniter:
    text, seconds_first = _parts(expr)
    try:
        return croniter(text, base, second_at_beginning=seconds_first)
    except (ValueError, KeyError) as exc:
        raise CronError(f"invalid cron expression {expr!r}: {exc}") from exc


def _every(expr: str) -> float | None:
    """Seconds of an ``@every <duration>`` expression (ticks aligned to the epoch), else None."""
    text = " ".join(expr.split())
    if not text.startswith("@every "):
        return None
    try:
        secs = parse_duration(text.removeprefix("@every "))
    except ValueError as exc:
        raise CronError(f"invalid cron expression {expr!r}: {exc}") from exc
    if not secs or secs < 1:
        raise CronError(f"invalid cron expression {expr!r}: the interval must be at least 1s")
    return secs


def previous_fire(expr: str, now: datetime) -> datetime:
    """The latest fire time at or before ``now``."""
    if (every := _every(expr)) is not None:
        return datetime.fromtimestamp((now.timestamp() // every) * every, tz=now.tzinfo)
    it = _iter(expr, now)
    nxt = it.get_next(datetime)
    if nxt == now:
        return now
    return _iter(expr, now).get_prev(datetime)


def next_fire(expr: str, after: datetime) -> datetime:
    if (every := _every(expr)) is not None:
        return datetime.fromtimestamp((after.timestamp() // every + 1) * every, tz=after.tzinfo)
    return _iter(expr, after).get_next(datetime)


def check(expr: str) -> str | None:
    """None when ``expr`` is valid, else why not."""
    try:
        next_fire(expr, datetime(2000, 1, 1, tzinfo=UTC))
    except CronError as exc:
        return str(exc)
    return None
