"""A token bucket over messages, on an injectable monotonic clock."""

from __future__ import annotations

from collections.abc import Callable


class TokenBucket:
    """``burst`` tokens, refilled at ``per_sec``; one message costs one token.

    Starts full, so the first alerts after a quiet spell go out at once.
    """

    def __init__(self, per_sec: float, burst: int, clock: Callable[[], float]) -> None:
        self._rate = per_sec
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def available(self) -> int:
        """Whole tokens available now."""
        self._refill()
        return int(self._tokens)

    def take(self) -> bool:
        """Spend one token if there is one."""
        self._refill()
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def wait_secs(self) -> float:
        """How long until one token is available (0 if one is)."""
        self._refill()
        return max(0.0, (1 - self._tokens) / self._rate)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + max(0.0, now - self._stamp) * self._rate)
        self._stamp = now
