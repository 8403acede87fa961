"""Availability records: which nodes donate space, for supplier lookup.

A supplier publishes ``supplier:<its idurl>`` (signed; the key embeds the publisher so
nobody else can write it) with the bytes it still offers, the ECC maps it accepts and a
timestamp, and adds its idurl to one index bucket (:mod:`bitdust.dht.index`) so that
customers can find it without knowing its idurl. :func:`find_available` reads every
bucket, shuffles the idurls, and returns only nodes whose own record verifies and fits
the request. The limits of the index are described in :mod:`bitdust.dht.index`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from twisted.internet.defer import Deferred, DeferredList, gatherResults, inlineCallbacks
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from bitdust.crypto.keys import PrivateKey
from bitdust.dht.index import bucket_key_for, index_keys
from bitdust.dht.kad import DhtNode
from bitdust.dht.records import DEFAULT_TTL, Record, sign_record, supplier_key

log = logging.getLogger(__name__)

REPUBLISH_SECONDS = DEFAULT_TTL / 3
VERIFY_BATCH = 8
"""Candidate records read at once: bounded so one lookup cannot flood the DHT."""


class Availability(NamedTuple):
    idurl: str
    free: int
    ecc_maps: tuple[str, ...]
    timestamp: int
    expires: int
    identity_verified: bool


def availability_of(record: Record) -> Availability | None:
    """The offer in a verified record; None if its data is not an offer."""
    data = record.data
    free, maps, stamp = data.get("free"), data.get("ecc_maps"), data.get("timestamp")
    if not isinstance(free, int) or isinstance(free, bool) or free < 0 or not isinstance(stamp, int):
        return None
    if not isinstance(maps, list) or not all(isinstance(m, str) for m in maps):
        return None
    return Availability(record.publisher, free, tuple(maps), stamp, record.expires, record.identity_verified)


def publish_availability(dht: DhtNode, key: PrivateKey, idurl: str, free: int, ecc_maps: Iterable[str],
                         ttl: float = DEFAULT_TTL) -> Deferred[Record]:
    """Publish (or refresh) this node's offer and its index entry; fires with the record."""
    now = dht.now()
    data = {"free": int(free), "ecc_maps": sorted(set(ecc_maps)), "timestamp": int(now)}
    record = sign_record(key, idurl, "supplier", supplier_key(idurl), data, now, ttl)
    both = gatherResults([dht.set(record.key, record),
                          dht.add_to_bucket(bucket_key_for(idurl), {idurl: record.expires})],
                         consumeErrors=True)
    return both.addCallback(lambda _results: record)


def read_availability(dht: DhtNode, idurl: str) -> Deferred[Availability | None]:
    def parse(record: Record | None) -> Availability | None:
        if record is None:
            return None
        offer = availability_of(record)
        if offer is None:
            dht.stats.read_rejected.add("bad-offer")
        return offer

    return dht.get(supplier_key(idurl)).addCallback(parse)


@inlineCallbacks
def find_available(dht: DhtNode, count: int, *, exclude: Iterable[str] = (), ecc_map: str | None = None,
                   min_free: int = 0, rng: random.Random | None = None) -> Any:
    """Up to ``count`` random nodes whose signed offer verifies and fits (``ecc_map``
    accepted, at least ``min_free`` bytes free). Fires with a list of Availability.

    Buckets that fail to load are skipped (a partial answer beats none); an idurl
    listed in a bucket without a valid record of its own is dropped and counted.
    """
    rng = rng or random.Random()
    skip = set(exclude)
    loads = yield DeferredList([dht.get_bucket(key) for key in index_keys()], consumeErrors=True)
    candidates: set[str] = set()
    for loaded, entries in loads:
        if loaded:
            candidates.update(entries)
        else:
            log.info("index bucket not read: %s", entries.getErrorMessage())
    order = sorted(candidates - skip)
    rng.shuffle(order)
    found: list[Availability] = []
    while order and len(found) < count:
        batch, order = order[:VERIFY_BATCH], order[VERIFY_BATCH:]
        offers = yield DeferredList([read_availability(dht, idurl) for idurl in batch], consumeErrors=True)
        for (read, offer), idurl in zip(offers, batch, strict=True):
            if not read:
                log.info("offer of %s not read: %s", idurl, offer.getErrorMessage())
            elif offer is None:
                dht.stats.read_rejected.add("index-without-offer")
            elif _fits(offer, ecc_map, min_free) and len(found) < count:
                found.append(offer)
    return found


def _fits(offer: Availability, ecc_map: str | None, min_free: int) -> bool:
    return offer.free >= min_free and (ecc_map is None or ecc_map in offer.ecc_maps)


class AvailabilityPublisher:
    """Keeps this node's offer alive while it donates space (the supplier service owns
    one). ``measure`` is asked each time for (free bytes, accepted ECC maps)."""

    def __init__(self, clock: IReactorTime, dht: DhtNode, key: PrivateKey, idurl: str,
                 measure: Callable[[], tuple[int, Sequence[str]]], interval: float = REPUBLISH_SECONDS) -> None:
        self.dht = dht
        self.key = key
        self.idurl = idurl
        self.measure = measure
        self.interval = interval
        self.last: Record | None = None
        self._first: Deferred[Any] | None = None
        self._loop = LoopingCall(self.publish_now)
        self._loop.clock = clock

    def start(self) -> Deferred[Any]:
        """Publish now and then every ``interval``; fires after the first publication."""
        first: Deferred[Any] = Deferred()
        self._first = first
        self._loop.start(self.interval, now=True)
        return first

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def publish_now(self) -> Deferred[None]:
        free, maps = self.measure()

        def done(record: Record) -> None:
            self.last = record
            self._settle(None)

        def failed(failure: Failure) -> None:
            # Logged, not raised: a failed round must not end the LoopingCall.
            log.warning("availability not published: %s", failure.getErrorMessage())
            self._settle(failure)

        return publish_availability(self.dht, self.key, self.idurl, free, maps).addCallbacks(done, failed)

    def _settle(self, failure: Failure | None) -> None:
        first, self._first = self._first, None
        if first is not None:
            if failure is None:
                first.callback(self.last)
            else:
                first.errback(failure)
