"""Retry timing and rate limits: the only place fsync waits on purpose.

Everything that sleeps goes through a `Clock`, so tests inject a fake one and never wait for
real (restic's `TestFastRetries`, rclone's `lib/pacer`). `retrying` re-runs a call that raised
`TransientError` with exponential backoff and full jitter, honouring a server's Retry-After;
`RateLimiter` is a token bucket shared by every request (`--tps-limit`) or every byte
(`--bw-limit`). Classifying failures is not done here: adapters translate foreign errors into
`TransientError`/`PermanentError` at their boundary, and this module only reads that verdict.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from fsync.errors import Halted, TransientError

__all__ = [
    "HALT_POLL",
    "REAL_CLOCK",
    "Clock",
    "RateLimiter",
    "RetryPolicy",
    "backoff_delay",
    "retry_after",
    "retrying",
]

T = TypeVar("T")

HALT_POLL = 0.1
"""Seconds between looks at a run's halt while waiting on its behalf (`RateLimiter.acquire`,
a multipart upload's parts): how late Ctrl-C may be noticed."""

_MAX_EXPONENT = 62
"""Backoff doubling stops here: 2**62 x any sane base is far past every `max_delay`, and a
larger exponent would overflow the float conversion."""


class Flag(Protocol):
    """What a wait looks at to give up: a `threading.Event`, or a stop with more causes."""

    def is_set(self) -> bool:
        """True once the wait should end in `Halted`."""
        ...


class Clock(Protocol):
    """Monotonic time and a way to wait: injectable so tests run retries in fake time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for `seconds` (no-op for zero or less)."""
        ...


class _RealClock:
    """The process's monotonic clock; waits on an Event that is never set.

    `Event.wait` rather than `time.sleep` (banned in fsync's code so that every wait goes
    through a Clock); it blocks only the calling thread and a signal still interrupts it in the
    main thread.
    """

    __slots__ = ("_never",)

    def __init__(self) -> None:
        self._never = threading.Event()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._never.wait(seconds)


REAL_CLOCK: Clock = _RealClock()
"""The clock every caller gets unless a test injects another."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a transient failure is retried.

    `retries` counts the attempts after the first (`--retries`; 0 means try once). The n-th
    retry (n from 0) waits a uniformly random time in [0, min(max_delay, base_delay x 2**n)].
    """

    retries: int = 5
    base_delay: float = 0.25
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be 0 or more, not {self.retries}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("retry delays must not be negative")


def backoff_delay(
    policy: RetryPolicy, attempt: int, rng: random.Random, retry_after: float | None
) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first retry).

    Full jitter (AWS's "exponential backoff and jitter"): uniform in
    [0, min(max_delay, base_delay x 2**attempt)], so many clients hitting the same throttled
    server spread out instead of retrying in lockstep. When the server said how long to wait
    (`retry_after`, from a Retry-After header), the delay is at least that, capped at twice
    `max_delay` so a hostile or confused server cannot park fsync for hours.
    """
    ceiling = min(policy.max_delay, policy.base_delay * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))
    delay = rng.uniform(0.0, ceiling)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, policy.max_delay * 2))
    return delay


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a Retry-After header in delta-seconds form (dates are ignored)."""
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


_SHARED_RNG = random.Random()
"""Jitter source when the caller gives none; jitter needs spread, not secrecy."""


_here = threading.local()


def retries_here() -> int:
    """The retries `retrying` has made on this thread since `reset_retries_here`: a
    transfer counts its requests' retries in its `attempts` (the `--log-file` field)."""
    return int(getattr(_here, "retries", 0))


def reset_retries_here() -> None:
    """Start counting this thread's retries afresh (`retries_here`)."""
    _here.retries = 0


def retrying(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str,
    clock: Clock = REAL_CLOCK,
    rng: random.Random | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Call `fn` and return its result, retrying it while it raises `TransientError`.

    At most `policy.retries` retries follow the first attempt, each after `backoff_delay`
    (the error's `retry_after` is honoured). `on_retry(n, error, delay)` is called before the
    n-th retry's wait (n from 1), e.g. to log it or count it. `fn` must be safe to call again:
    a body it sends is re-opened or rewound on each call.

    Raises whatever `fn` raises that is not a `TransientError` at once: `PermanentError`,
    builtin errors, and never-retried `KeyboardInterrupt`/`asyncio.CancelledError` (these are
    `BaseException`s, so a cancelled operation is not repeated). When the retries run out,
    raises a copy of the last `TransientError` (same type and attributes) whose message is
    ``f"{what}: {error} (gave up after N attempts)"``, chained to the original.
    """
    jitter = _SHARED_RNG if rng is None else rng
    attempt = 0
    while True:
        try:
            return fn()
        except TransientError as exc:
            if attempt >= policy.retries:
                raise _gave_up(exc, what, attempt + 1) from exc
            delay = backoff_delay(policy, attempt, jitter, exc.retry_after)
            attempt += 1
            _here.retries = retries_here() + 1
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            clock.sleep(delay)


def _gave_up(exc: TransientError, what: str, attempts: int) -> TransientError:
    """A copy of `exc` (same class, same attributes) with the give-up message.

    Built without calling the class's `__init__`, whose signature a subclass may have changed;
    `str()` of an exception is its single argument.
    """
    noun = "attempt" if attempts == 1 else "attempts"
    final = type(exc).__new__(type(exc))
    final.__dict__.update(exc.__dict__)
    final.args = (f"{what}: {exc} (gave up after {attempts} {noun})",)
    return final


class RateLimiter:
    """A thread-safe token bucket: `rate` tokens a second, at most `burst` saved up while idle.

    One token per request gives `--tps-limit`, one per byte gives `--bw-limit`. A caller
    reserves its tokens under the lock and then waits outside it, so the bucket may go into
    debt: a request for more than `burst` (a 16 MiB part against a 1 MiB/s limit) simply waits
    proportionally longer instead of deadlocking, callers are served in the order they asked,
    and the long-run rate is exact. `rate=0` means unlimited: `acquire` returns at once.
    `burst` defaults to one token, as rclone's `--tps-limit-burst` does; the bucket starts full.
    """

    def __init__(self, rate: float, burst: float | None = None, clock: Clock = REAL_CLOCK) -> None:
        if rate < 0:
            raise ValueError(f"rate must be 0 (unlimited) or more, not {rate}")
        capacity = 1.0 if burst is None else float(burst)
        if capacity <= 0:
            raise ValueError(f"burst must be positive, not {burst}")
        self.rate = float(rate)
        self.burst = capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = capacity
        self._stamp = clock.monotonic()

    def acquire(self, n: float = 1, halted: Flag | None = None) -> None:
        """Block until `n` tokens are available and spend them; raises ValueError if `n` < 0.

        With `halted`, the wait looks at it every `HALT_POLL` seconds and raises `Halted`
        once it is set, giving the tokens back: a part queued behind others under
        `--bw-limit` may otherwise wait for all of them to be sent first.
        """
        if n < 0:
            raise ValueError(f"cannot acquire a negative number of tokens ({n})")
        if self.rate == 0 or n == 0:
            return
        with self._lock:
            now = self._clock.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait <= 0:
            return
        if halted is None:
            self._clock.sleep(wait)
            return
        end = self._clock.monotonic() + wait
        while (left := end - self._clock.monotonic()) > 0:
            if halted.is_set():
                with self._lock:
                    self._tokens = min(self.burst, self._tokens + n)
                raise Halted("interrupted")
            self._clock.sleep(min(left, HALT_POLL))
