"""Presence in the DHT: every online node lists its idurl in a ``nodes-index:<k>`` bucket.

Broadcasts must reach nodes we never talked to, and Kademlia cannot list its keys, so
each node adds ``idurl -> expires`` to the bucket its idurl hashes to
(:mod:`bitdust.dht.index`, shared with supplier lookup) and refreshes it every
:data:`REPUBLISH_SECONDS`. Readers merge all buckets.

Limits (documented for broadcasting): entries are unauthenticated hints, as index
entries are (a bucket merges many publishers, so no one signature can cover it). A junk
idurl only costs a failed identity fetch or send: every packet to or from a listed node
is still checked against the identity its own server serves. A node that stopped stays
listed until its entry expires (:data:`PRESENCE_TTL`). The index holds at most
``INDEX_BUCKETS * MAX_ENTRIES`` (512) nodes; beyond that, the most recently refreshed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from bitdust.dht.index import NODES_INDEX_PREFIX, bucket_key_for, index_keys
from bitdust.dht.kad import DhtNode

log = logging.getLogger(__name__)

PRESENCE_TTL = 15 * 60
REPUBLISH_SECONDS = 5 * 60.0


def publish_presence(dht: DhtNode, idurl: str, ttl: float = PRESENCE_TTL) -> Deferred[bool]:
    return dht.add_to_bucket(bucket_key_for(idurl, NODES_INDEX_PREFIX), {idurl: int(dht.now() + ttl)})


@inlineCallbacks
def online_nodes(dht: DhtNode) -> Any:
    """Every idurl listed and not expired, sorted; unreadable buckets are skipped."""
    loads = yield DeferredList([dht.get_bucket(key) for key in index_keys(NODES_INDEX_PREFIX)],
                               consumeErrors=True)
    found: set[str] = set()
    for loaded, entries in loads:
        if loaded:
            found.update(entries)
        else:
            log.info("nodes index bucket not read: %s", entries.getErrorMessage())
    return sorted(found)


class PresencePublisher:
    """Keeps this node listed while it is online. ``whoami``/``dht`` are asked on every
    round, since the identity and the DHT may come and go while it runs."""

    def __init__(self, clock: IReactorTime, dht: Callable[[], DhtNode | None],
                 my_idurl: Callable[[], str | None], interval: float = REPUBLISH_SECONDS) -> None:
        self._dht = dht
        self._my_idurl = my_idurl
        self._loop = LoopingCall(self.publish_now)
        self._loop.clock = clock
        self._interval = interval
        self.published = 0

    def start(self) -> None:
        self._loop.start(self._interval, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def publish_now(self) -> Deferred[Any] | None:
        dht, idurl = self._dht(), self._my_idurl()
        if dht is None or idurl is None or not dht.running:
            return None

        def done(_stored: bool) -> None:
            self.published += 1

        def failed(failure: Failure) -> None:
            # Logged, not raised: a failed round must not end the LoopingCall.
            log.info("presence not published: %s", failure.getErrorMessage())

        return publish_presence(dht, idurl).addCallbacks(done, failed)
