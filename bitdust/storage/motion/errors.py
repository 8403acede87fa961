"""Why moving a piece failed, in words a caller (backup, restore, rebuild) can act on."""

from __future__ import annotations


class MotionError(RuntimeError):
    """Base of every data-motion failure."""


class PieceRefused(MotionError):
    """The supplier answered Fail; ``code`` is the market's stable word (``not-found``,
    ``over-quota``, ``rejected``, ...), ``reason`` its text for people."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class PieceTimeout(MotionError):
    """No answer in time, or the supplier could not be reached at all."""


class MotionBusy(MotionError):
    """Too many pieces are already waiting: refused at once instead of queueing without end."""


class NoSupplier(MotionError):
    """Nobody holds that position right now (not hired yet, or being replaced)."""
