"""Small HTTP helpers shared by the identity cache and the identity publisher.

``twisted.web.client.readBody`` reads whatever the server sends; identity documents
come from anyone on the network, so bodies are read through :class:`CappedBody`, which
drops the connection as soon as the cap is passed instead of buffering it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss


class BodyTooLarge(ValueError):
    """The response body passed the cap; the connection was dropped."""


class CappedBody(Protocol):
    """Collects a response body up to ``limit`` bytes into ``finished``."""

    def __init__(self, finished: Deferred[bytes], limit: int, declared_length: Any = None) -> None:
        self.finished = finished
        self.limit = limit
        self.declared_length = declared_length
        self._chunks: list[bytes] = []
        self._size = 0
        self._done = False

    def connectionMade(self) -> None:
        if isinstance(self.declared_length, int) and self.declared_length > self.limit:
            self._fail(BodyTooLarge(f"response of {self.declared_length} bytes exceeds {self.limit}"))

    def dataReceived(self, data: bytes) -> None:
        if self._done:
            return
        self._size += len(data)
        if self._size > self.limit:
            self._fail(BodyTooLarge(f"response exceeds {self.limit} bytes"))
            return
        self._chunks.append(data)

    def connectionLost(self, reason: Failure = Failure(CancelledError())) -> None:  # noqa: B008
        if self._done:
            return
        self._done = True
        # PotentialDataLoss: no Content-Length and the server closed; the body is whole.
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self._chunks))
        else:
            self.finished.errback(reason)

    def _fail(self, exc: Exception) -> None:
        self._done = True
        self._chunks.clear()
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]
        self.finished.errback(exc)


def read_capped(response: Any, limit: int) -> Deferred[bytes]:
    """Read ``response``'s body (an IResponse), failing with BodyTooLarge past ``limit``."""
    finished: Deferred[bytes] = Deferred(lambda _d: _stop(protocol))
    protocol = CappedBody(finished, limit, response.length)
    response.deliverBody(protocol)
    return finished


def _stop(protocol: CappedBody) -> None:
    """Canceller: a timed-out read must also drop the connection."""
    protocol._done = True
    if protocol.transport is not None:
        protocol.transport.stopProducing()  # type: ignore[attr-defined]
