"""Retry timing and rate limits (fsync.remote.retry) over a fake clock: no test waits for real,
except the thread-safety smoke test, which runs the real clock at a high rate for well under
a second."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable

import pytest

from fsync.errors import FsyncError, Halted, PermanentError, TransientError
from fsync.remote.retry import (
    HALT_POLL,
    REAL_CLOCK,
    RateLimiter,
    RetryPolicy,
    backoff_delay,
    retrying,
)


class FakeClock:
    """A clock whose sleeps are recorded and advance time at once; thread-safe."""

    def __init__(self, start: float = 1000.0, *, frozen: bool = False) -> None:
        self.now = start
        self.frozen = frozen  # sleeps are recorded but time stands still
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            if not self.frozen:
                self.now += max(seconds, 0.0)


class Flaky:
    """A callable that raises the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class ThrottledError(TransientError):
    """A TransientError subclass with its own constructor, as an adapter might define."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}", retry_after=None)
        self.status = status


# --- backoff_delay ------------------------------------------------------------------------


def test_backoff_is_bounded_by_the_exponential_ceiling() -> None:
    policy = RetryPolicy(retries=10, base_delay=0.5, max_delay=8.0)
    rng = random.Random(1)
    for attempt in range(12):
        ceiling = min(8.0, 0.5 * 2**attempt)
        delays = [backoff_delay(policy, attempt, rng, None) for _ in range(300)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # full jitter spreads across the whole range, not just near the ceiling
        assert min(delays) < ceiling * 0.1
        assert max(delays) > ceiling * 0.9


def test_backoff_honours_retry_after_up_to_twice_max_delay() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=5.0)
    rng = random.Random(2)
    assert all(backoff_delay(policy, 0, rng, 3.0) >= 3.0 for _ in range(50))
    assert all(backoff_delay(policy, 0, rng, 3.0) <= 3.0 for _ in range(50))  # 0.1 ceiling
    assert backoff_delay(policy, 0, rng, 3600.0) == 10.0
    assert backoff_delay(policy, 0, rng, 0.0) <= 0.1
    assert backoff_delay(policy, 0, rng, -4.0) <= 0.1


def test_backoff_survives_huge_attempt_numbers() -> None:
    policy = RetryPolicy(base_delay=0.25, max_delay=30.0)
    assert 0.0 <= backoff_delay(policy, 5000, random.Random(3), None) <= 30.0


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="retries"):
        RetryPolicy(retries=-1)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(base_delay=-0.1)


# --- retrying -------------------------------------------------------------------------------


def test_success_needs_no_retry_and_no_sleep() -> None:
    clock = FakeClock()
    fn = Flaky()
    assert retrying(fn, RetryPolicy(), what="put a", clock=clock) == "ok"
    assert fn.calls == 1
    assert clock.sleeps == []


def test_transient_errors_are_retried_with_growing_bounded_jittered_delays() -> None:
    clock = FakeClock()
    policy = RetryPolicy(retries=5, base_delay=1.0, max_delay=6.0)
    fn = Flaky(*(TransientError("HTTP 503 SlowDown") for _ in range(5)))
    seen: list[tuple[int, str, float]] = []

    result = retrying(
        fn,
        policy,
        what="upload part 3",
        clock=clock,
        rng=random.Random(7),
        on_retry=lambda n, exc, delay: seen.append((n, str(exc), delay)),
    )

    assert result == "ok"
    assert fn.calls == 6
    assert [n for n, _, _ in seen] == [1, 2, 3, 4, 5]
    assert all(msg == "HTTP 503 SlowDown" for _, msg, _ in seen)
    assert clock.sleeps == [delay for _, _, delay in seen]
    ceilings = [1.0, 2.0, 4.0, 6.0, 6.0]  # base x 2**n, capped at max_delay
    assert all(0.0 <= d <= c for d, c in zip(clock.sleeps, ceilings, strict=True))
    # jittered: not the ceilings themselves, and not all equal
    assert clock.sleeps != ceilings
    assert len(set(clock.sleeps)) == 5


def test_delays_grow_on_average() -> None:
    """Across many seeded runs, later retries wait longer on average than earlier ones."""
    policy = RetryPolicy(retries=4, base_delay=1.0, max_delay=100.0)
    totals = [0.0] * 4
    for seed in range(200):
        clock = FakeClock()
        fn = Flaky(*(TransientError("timeout") for _ in range(4)))
        retrying(fn, policy, what="x", clock=clock, rng=random.Random(seed))
        totals = [t + s for t, s in zip(totals, clock.sleeps, strict=True)]
    assert totals == sorted(totals)
    assert totals[3] > 4 * totals[0]


def test_retry_after_from_the_error_is_honoured() -> None:
    clock = FakeClock()
    policy = RetryPolicy(retries=3, base_delay=0.01, max_delay=30.0)
    fn = Flaky(TransientError("429 Too Many Requests", retry_after=7.0))
    assert retrying(fn, policy, what="list", clock=clock, rng=random.Random(0)) == "ok"
    assert clock.sleeps == [7.0]


def test_permanent_errors_are_not_retried() -> None:
    clock = FakeClock()
    fn = Flaky(PermanentError("403 AccessDenied"))
    with pytest.raises(PermanentError, match=r"^403 AccessDenied$"):
        retrying(fn, RetryPolicy(), what="put a", clock=clock)
    assert fn.calls == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "error",
    [
        FileNotFoundError("no such key"),
        PermissionError("denied"),
        ValueError("bug"),
        FsyncError("neither transient nor permanent"),
        KeyboardInterrupt(),
        asyncio.CancelledError(),
    ],
    ids=["not-found", "permission", "value", "plain-fsync", "interrupt", "cancelled"],
)
def test_everything_else_propagates_at_once(error: BaseException) -> None:
    clock = FakeClock()
    fn = Flaky(error)
    with pytest.raises(type(error)):
        retrying(fn, RetryPolicy(), what="x", clock=clock)
    assert fn.calls == 1
    assert clock.sleeps == []


def test_cancellation_after_a_transient_error_stops_retrying() -> None:
    clock = FakeClock()
    fn = Flaky(TransientError("reset"), KeyboardInterrupt(), TransientError("never reached"))
    with pytest.raises(KeyboardInterrupt):
        retrying(fn, RetryPolicy(retries=5), what="x", clock=clock, rng=random.Random(0))
    assert fn.calls == 2
    assert len(clock.sleeps) == 1


def test_gives_up_after_retries_and_names_the_attempts() -> None:
    clock = FakeClock()
    fn = Flaky(*(TransientError(f"HTTP 503 #{i}", retry_after=1.5) for i in range(10)))
    with pytest.raises(TransientError) as caught:
        retrying(fn, RetryPolicy(retries=3), what="upload big.bin part 2", clock=clock)
    assert fn.calls == 4
    assert len(clock.sleeps) == 3
    assert str(caught.value) == "upload big.bin part 2: HTTP 503 #3 (gave up after 4 attempts)"
    assert caught.value.retry_after == 1.5
    assert isinstance(caught.value.__cause__, TransientError)
    assert str(caught.value.__cause__) == "HTTP 503 #3"


def test_giving_up_keeps_the_subclass_and_its_attributes() -> None:
    fn = Flaky(ThrottledError(503), ThrottledError(500))
    with pytest.raises(ThrottledError) as caught:
        retrying(fn, RetryPolicy(retries=1), what="head k", clock=FakeClock())
    assert caught.value.status == 500
    assert str(caught.value) == "head k: HTTP 500 (gave up after 2 attempts)"


def test_zero_retries_means_one_attempt() -> None:
    clock = FakeClock()
    fn = Flaky(TransientError("timeout"))
    with pytest.raises(TransientError, match=r"^get k: timeout \(gave up after 1 attempt\)$"):
        retrying(fn, RetryPolicy(retries=0), what="get k", clock=clock)
    assert fn.calls == 1
    assert clock.sleeps == []


def test_the_real_clock_sleeps_for_real() -> None:
    began = time.monotonic()
    REAL_CLOCK.sleep(0.05)
    REAL_CLOCK.sleep(0)
    REAL_CLOCK.sleep(-1)
    elapsed = time.monotonic() - began
    assert 0.04 <= elapsed < 1.0
    assert REAL_CLOCK.monotonic() >= began


# --- RateLimiter ----------------------------------------------------------------------------


def test_requests_are_paced_to_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5, clock=clock)
    began = clock.monotonic()
    stamps = []
    for _ in range(10):
        limiter.acquire()
        stamps.append(clock.monotonic() - began)
    # the bucket starts with one token: the first request goes at once, then one every 0.2 s
    assert stamps == pytest.approx([0.2 * i for i in range(10)])
    assert clock.monotonic() - began == pytest.approx(1.8)


def test_idle_time_refills_only_up_to_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, burst=3, clock=clock)
    for _ in range(3):
        limiter.acquire()
    assert clock.sleeps == []  # the initial burst
    clock.sleep(60)  # a long idle spell saves up no more than `burst`
    clock.sleeps.clear()
    for _ in range(3):
        limiter.acquire()
    assert clock.sleeps == []
    limiter.acquire()
    assert clock.sleeps == [pytest.approx(0.1)]


def test_bytes_limiter_allows_requests_larger_than_burst() -> None:
    clock = FakeClock()
    mib = 1024 * 1024
    limiter = RateLimiter(mib, burst=64 * 1024, clock=clock)
    began = clock.monotonic()
    for _ in range(4):
        limiter.acquire(4 * mib)  # 64 times the burst: waits, never deadlocks
    elapsed = clock.monotonic() - began
    # 16 MiB at 1 MiB/s, less the 64 KiB the bucket started with
    assert elapsed == pytest.approx(16 - 1 / 16)


def test_bytes_limiter_long_run_rate_with_small_chunks() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100_000, burst=100_000, clock=clock)
    began = clock.monotonic()
    for _ in range(1000):
        limiter.acquire(1000)  # 1 MB in 1 kB chunks
    assert clock.monotonic() - began == pytest.approx(9.0)  # less the 1 s starting burst


def test_zero_rate_never_waits() -> None:
    clock = FakeClock()
    limiter = RateLimiter(0, clock=clock)
    for _ in range(1000):
        limiter.acquire(10**9)
    assert clock.sleeps == []


def test_limiter_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(-1)
    with pytest.raises(ValueError, match="burst"):
        RateLimiter(5, burst=0)
    with pytest.raises(ValueError, match="negative"):
        RateLimiter(5).acquire(-1)


def test_zero_tokens_cost_nothing() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, clock=clock)
    limiter.acquire()
    limiter.acquire(0)
    assert clock.sleeps == []


def test_a_halted_wait_stops_at_its_next_look_and_gives_its_tokens_back() -> None:
    """A part waiting its turn under --bw-limit waited it out after Ctrl-C."""
    clock = FakeClock()
    limiter = RateLimiter(1, clock=clock)
    halted = threading.Event()
    limiter.acquire(10, halted)  # 9 s in debt, waited in steps of HALT_POLL
    assert max(clock.sleeps) == pytest.approx(HALT_POLL)
    assert sum(clock.sleeps) == pytest.approx(9)
    clock.sleeps.clear()
    halted.set()
    with pytest.raises(Halted):
        limiter.acquire(5, halted)
    assert clock.sleeps == []
    limiter.acquire(1)  # the 5 tokens were given back: 1 s to wait, not 6
    assert clock.sleeps == [pytest.approx(1)]


def _hammer(limiter: RateLimiter, count: int, errors: list[BaseException]) -> Callable[[], None]:
    def run() -> None:
        try:
            for _ in range(count):
                limiter.acquire()
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    return run


def test_threads_share_the_rate_over_a_fake_clock() -> None:
    """8 threads x 25 requests at 50/s, all at one frozen instant: each of the 199 requests
    beyond the first token gets its own slot 0.02 s after the previous one (no lost update)."""
    clock = FakeClock(frozen=True)
    limiter = RateLimiter(50, clock=clock)
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_hammer(limiter, 25, errors)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(clock.sleeps) == pytest.approx([0.02 * i for i in range(1, 200)])


def test_threads_share_the_rate_with_the_real_clock() -> None:
    """Smoke test: 4 threads x 50 requests at 500/s take ~0.4 s of real time, not less."""
    limiter = RateLimiter(500, clock=REAL_CLOCK)
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_hammer(limiter, 50, errors)) for _ in range(4)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    elapsed = time.monotonic() - began
    assert errors == []
    assert not any(thread.is_alive() for thread in threads)
    assert 199 / 500 * 0.95 <= elapsed < 1.0
