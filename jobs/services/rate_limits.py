"""Per-organization submit rate limits: one organization cannot flood the queen for the others.

A token bucket per organization: ``FORMICARY_SUBMIT_BURST`` submits at once, refilled at
``FORMICARY_SUBMIT_RATE`` (``600/m``: ten a second). A submit call takes one token whatever it
holds, so a bulk submit of 1,000 requests is one. The buckets live in Redis when ``REDIS_URL``
is set (shared by every web process) and in this process otherwise (standalone is one process).
"""

import math
import re
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from django.conf import settings

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$", re.IGNORECASE)
_UNIT_SECS = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class Rate:
    per_sec: float
    burst: int
    text: str


class SubmitRateLimited(Exception):
    """The organization submitted faster than its rate; ``retry_after`` is in whole seconds."""

    def __init__(self, reason: str, retry_after: int) -> None:
        self.reason = reason
        self.retry_after = retry_after
        self.message = f"{reason}; retry after {retry_after} s"
        super().__init__(self.message)


def parse_rate(text: str, burst: int) -> Rate | None:
    """``"600/m"`` (per s, m or h); ``""`` or ``"0"`` turns the limit off."""
    if text.strip() in ("", "0"):
        return None
    m = _RATE.match(text)
    if m is None or float(m.group(1)) <= 0:
        raise ValueError(f"FORMICARY_SUBMIT_RATE must look like 600/m (per s, m or h), not {text!r}")
    per_sec = float(m.group(1)) / _UNIT_SECS[m.group(2)[0].lower()]
    return Rate(per_sec=per_sec, burst=max(1, burst), text=text.strip())


class Buckets(Protocol):
    def take(self, key: str, rate: Rate) -> float:
        """Takes a token; 0 when there was one, else the seconds until there is."""


class LocalBuckets:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key: (tokens, when counted)

    def take(self, key: str, rate: Rate) -> float:
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(rate.burst), now))
            tokens = min(float(rate.burst), tokens + (now - at) * rate.per_sec)
            wait = 0.0
            if tokens >= 1:
                tokens -= 1
            else:
                wait = (1 - tokens) / rate.per_sec
            self._buckets[key] = (tokens, now)
            return wait


# refill, take and store in one step on the server (its clock), so web processes share buckets
_TAKE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = math.min(burst, (tonumber(held[1]) or burst) + math.max(0, t - (tonumber(held[2]) or t)) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(t))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""


class RedisBuckets:
    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self._prefix = prefix
        self._take = redis.Redis.from_url(url).register_script(_TAKE)

    def take(self, key: str, rate: Rate) -> float:
        return float(self._take(keys=[f"{self._prefix}:rate:{key}"], args=[rate.per_sec, rate.burst]))


@lru_cache(maxsize=1)
def buckets() -> Buckets:
    if settings.REDIS_URL:
        return RedisBuckets(settings.REDIS_URL, settings.FORMICARY_REDIS_PREFIX)
    return LocalBuckets()


def submit_rate_check(*, org_id: int) -> None:
    """Counts one submit call of the organization; raises SubmitRateLimited over its rate."""
    rate = parse_rate(settings.FORMICARY_SUBMIT_RATE, settings.FORMICARY_SUBMIT_BURST)
    if rate is None:
        return
    wait = buckets().take(f"submit:{org_id}:{rate.text}:{rate.burst}", rate)
    if wait > 0:
        retry_after = max(1, math.ceil(wait))
        raise SubmitRateLimited(
            f"this organization submits faster than FORMICARY_SUBMIT_RATE={rate.text} "
            f"(bursts of FORMICARY_SUBMIT_BURST={rate.burst})",
            retry_after,
        )
