"""service_data_disintegration: the erasure-coding worker.

Reading, compressing, sealing and zfec of blocks are blocking calls; they run here, in
the reactor's thread pool, never on the reactor. At most :data:`MAX_PARALLEL` such calls
run at once for the whole node (backup jobs, rebuilds, re-encodes share them), so a
burst of jobs cannot take every pool thread from the gateway's signing and the
supplier's disk writes; the rest wait in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred, DeferredSemaphore, succeed
from twisted.internet.threads import deferToThreadPool

from bitdust.services.service import Service

if TYPE_CHECKING:
    from bitdust.node import Node

T = TypeVar("T")
MAX_PARALLEL = 2
_END = object()


class EccWorker:
    def __init__(self, reactor: Any, parallel: int = MAX_PARALLEL) -> None:
        self.reactor = reactor
        self._gate = DeferredSemaphore(parallel)
        self.busy = 0

    def run(self, fn: Callable[..., T], *args: Any) -> Deferred[T]:
        """``fn(*args)`` in a pool thread, within this worker's limit."""
        def call() -> Deferred[T]:
            self.busy += 1

            def done(result: Any) -> Any:
                self.busy -= 1
                return result

            pool = self.reactor.getThreadPool()
            return deferToThreadPool(self.reactor, pool, fn, *args).addBoth(done)

        return self._gate.run(call)

    def next_item(self, iterator: Iterator[T]) -> Deferred[T | None]:
        """The next item of a blocking iterator (a BackupEncoder), None at its end.
        One caller per iterator at a time: generators are not re-entrant."""
        def step() -> Any:
            return next(iterator, _END)

        return self.run(step).addCallback(lambda item: None if item is _END else item)


class DataDisintegrationService(Service):
    name = "service_data_disintegration"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.worker: EccWorker | None = None

    def start(self) -> Deferred[None]:
        self.worker = EccWorker(self.node.reactor)
        return succeed(None)

    def stop(self) -> Deferred[None]:
        self.worker = None
        return succeed(None)


def running_worker(node: Node, what: str) -> EccWorker:
    service = node.services.running("service_data_disintegration", DataDisintegrationService, what,
                                    lambda s: s.worker is not None)
    assert service.worker is not None
    return service.worker
