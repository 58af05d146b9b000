"""When to send again: which answers mean delivered, retry or refused for good, and the backoff between tries.

* 2xx: delivered; the events leave the buffer.
* A network error (connection refused or reset, timeout, DNS), 5xx, 429 Too Many Requests, and 408 Request
  Timeout (the collector's answer when its sink was too slow to make the request durable in time, spec §3.3):
  retried with exponential backoff and jitter, for as long as it takes; the events stay in the buffer.
* Any other 4xx (400 malformed, 413 too large, 404 wrong path ...): the same bytes would be refused again,
  so the events are dropped from the buffer, counted as rejected and logged.
* Anything else (1xx, 3xx: a misconfigured endpoint or proxy): retried, since dropping data is worse.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, field


class Verdict(enum.Enum):
    """What to do with the events of a request after its answer."""

    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"


RETRYABLE_4XX = frozenset({408, 429})


def classify_status(status: int) -> Verdict:
    """The verdict for an HTTP status code (see the module docstring)."""
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if 400 <= status < 500 and status not in RETRYABLE_4XX:
        return Verdict.REJECTED
    return Verdict.RETRY


def retry_after_seconds(value: str | None) -> float | None:
    """A `Retry-After` header given in seconds (the HTTP-date form is ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: after the n-th failure in a row, wait `cap/2 + uniform(0, cap/2)` where
    `cap = min(max_delay, base_delay * multiplier**(n-1))` ("equal jitter": never zero, never in lock-step with
    other clients). A `Retry-After` header is honoured, up to `max_delay`."""

    base_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    rng: Callable[[float, float], float] = field(default=random.uniform, repr=False)

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after `failures` (>= 1) failures in a row."""
        cap = min(self.max_delay, self.base_delay * self.multiplier ** max(failures - 1, 0))
        delay = cap / 2 + self.rng(0.0, cap / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_delay))
        return delay
