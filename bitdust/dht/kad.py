"""The node's Kademlia DHT: ``kademlia.network.Server`` on the reactor's asyncio loop.

kademlia is asyncio code; the daemon runs Twisted's asyncio reactor, so both share one
loop and every call here returns a Deferred made with ``Deferred.fromFuture``.

Timeouts: kademlia waits 5 s for each UDP RPC (``rpcudp`` default), and a lookup is a
chain of rounds. Here each RPC waits ``rpc_timeout`` (2 s by default; loopback and LAN
answer in milliseconds) and each whole operation is cut at ``op_timeout`` (15 s) and
fails with :class:`DhtError`. A lookup on a network with no known neighbour answers
``None`` at once; a dead peer costs one ``rpc_timeout`` and is then dropped from the
routing table by kademlia.

Reading verifies every record (:func:`bitdust.dht.records.check_record`), then the
publisher's identity when an identity lookup is given (see :class:`DhtNode`), then the
owner a reader has already seen for a first-come key (trust on first use: a record
from another publisher is ignored while the known owner's record lives). Refusals are
counted in ``stats.read_rejected``; refusals by the storing side in
``stats.store_refused``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections import Counter, OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from kademlia.node import Node as KadNode
from kademlia.utils import digest
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.python.failure import Failure

from bitdust.crypto.keys import BadKeyError, PublicKey
from bitdust.dht.index import make_bucket, merge_entries, parse_bucket
from bitdust.dht.protocol import AllValuesCrawl, KadServer, parse_seeds
from bitdust.dht.records import FIRST_COME, OWNERSHIP, Record, RecordRejected, RejectCounter, check_record
from bitdust.dht.storage import GuardedStorage

log = logging.getLogger(__name__)

T = TypeVar("T")
IdentityLookup = Callable[[str], "Deferred[PublicKey]"]
"""idurl -> Deferred firing with the publisher's current public key (fails if unknown)."""

KNOWN_OWNERS_LIMIT = 4096


class DhtError(RuntimeError):
    """The DHT is not running, or an operation failed or timed out."""


class DhtStats:
    def __init__(self) -> None:
        self.read_rejected = RejectCounter()
        self.store_refused = RejectCounter()

    def as_dict(self) -> dict[str, Any]:
        return {"read_rejected": self.read_rejected.as_dict(), "store_refused": self.store_refused.as_dict()}


class DhtNode:
    """One DHT participant.

    ``identity_lookup``: when given, a record is accepted only if the publisher's
    identity resolves and holds the record's key (``identity_verified`` is then True);
    an unresolvable publisher is rejected (``identity-unresolved``). When None (no
    identity cache on this node yet), records are accepted on their signature alone and
    ``identity_verified`` stays False: callers must check the identity themselves before
    trusting the key, as every packet exchange does anyway.
    """

    def __init__(self, reactor: Any, *, now: Callable[[], float] | None = None, rpc_timeout: float = 2.0,
                 op_timeout: float = 15.0, ksize: int = 20, alpha: int = 3,
                 identity_lookup: IdentityLookup | None = None) -> None:
        loop = getattr(reactor, "_asyncioEventloop", None)
        if loop is None:
            raise DhtError("the DHT needs Twisted's asyncio reactor (kademlia is asyncio code)")
        self._loop: asyncio.AbstractEventLoop = loop
        self._now = now if now is not None else reactor.seconds
        self.rpc_timeout = rpc_timeout
        self.op_timeout = op_timeout
        self.identity_lookup = identity_lookup
        self.stats = DhtStats()
        self.storage = GuardedStorage(self._now, digest, self.stats.store_refused)
        self._server = KadServer(rpc_timeout, ksize=ksize, alpha=alpha, storage=self.storage)
        self._known_owners: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.host: str | None = None
        self.port: int | None = None
        self.seeds: list[tuple[str, int]] = []

    # -- lifecycle -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.port is not None

    def now(self) -> float:
        return self._now()

    def start(self, port: int, host: str, seeds: Sequence[str | tuple[str, int]] = ()) -> Deferred[int]:
        """Listen on ``host:port`` (UDP; port 0 picks one) and bootstrap from ``seeds``.
        Fires with the number of neighbours found; unreachable seeds are not an error:
        the node is then alone until someone bootstraps from it or :meth:`bootstrap`."""
        try:
            if ipaddress.ip_address(host).is_unspecified:
                raise DhtError(f"refusing to listen on {host}: set network/host to one address")
        except ValueError:
            raise DhtError(f"network/host {host!r} must be an IP address for the DHT") from None
        if self.running:
            raise DhtError("the DHT is already running")
        self.seeds = parse_seeds(seeds)

        async def listen() -> int:
            await self._server.listen(port, interface=host)
            sockname = self._server.transport.get_extra_info("sockname")
            return int(sockname[1])

        def listening(real_port: int) -> Deferred[int]:
            self.host, self.port = host, real_port
            self.seeds = [seed for seed in self.seeds if seed != (host, real_port)]
            log.info("DHT listening on %s:%d, %d seed(s)", host, real_port, len(self.seeds))
            return self.bootstrap()

        return self._run(listen()).addCallback(listening)

    def bootstrap(self, seeds: Sequence[tuple[str, int]] | None = None) -> Deferred[int]:
        """Ping the seeds and crawl towards our own id; fires with the neighbour count."""
        addrs = list(self.seeds if seeds is None else seeds)
        if not addrs:
            return succeed(len(self.neighbours()))

        async def run() -> int:
            await self._server.bootstrap(await self._resolve(addrs))
            return len(self.neighbours())

        def report(count: int) -> int:
            if not count:
                log.warning("DHT: no seed answered among %s", addrs)
            return count

        return self._run(run()).addCallback(report)

    async def _resolve(self, addrs: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """kademlia takes IP addresses only (a host name would be resolved by a blocking
        ``sendto``): resolve names here, on the loop, without blocking it."""
        resolved = []
        for host, port in addrs:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                try:
                    infos = await self._loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
                except OSError as exc:
                    log.warning("DHT seed %s:%d not resolved: %s", host, port, exc)
                    continue
                host = str(infos[0][4][0])
            resolved.append((host, port))
        return resolved

    def stop(self) -> Deferred[None]:
        """Close the socket and end pending lookups (their Deferreds fail with CancelledError).

        Requests waiting for an answer are cancelled, not answered "no reply": kademlia
        goes on after a missing reply (the next node of a lookup, the next store), and
        those sends would then hit the closed socket inside orphaned tasks."""
        if not self.running:
            return succeed(None)
        self.port = None
        protocol = self._server.protocol
        if protocol is not None:
            protocol.closed = True
            for future, timeout in list(protocol._outstanding.values()):
                timeout.cancel()
                future.cancel()
            protocol._outstanding.clear()
        for task in list(self._tasks):
            task.cancel()
        self._server.stop()
        return succeed(None)

    def neighbours(self) -> list[tuple[str, int]]:
        protocol = self._server.protocol
        if protocol is None:
            return []
        return [(n.ip, n.port) for n in protocol.router.find_neighbors(self._server.node, k=1000)]

    # -- records ---------------------------------------------------------------------

    def set(self, key: str, record: Record) -> Deferred[bool]:
        """Store a signed record on the nodes closest to ``key`` (and here, when alone).
        Fires True if at least one node took the RPC; storing nodes may still refuse it
        under the record rules (they answer True regardless: kademlia's protocol)."""
        if record.key != key:
            raise RecordRejected("wrong-key", f"record for {record.key!r} set under {key!r}")
        # The owner is not remembered here: storing nodes may refuse this record, and
        # only what a read verified may pin a key.
        return self._set_value(key, record.to_json())

    def get(self, key: str) -> Deferred[Record | None]:
        """The verified record under ``key``, or None when absent or every copy is rejected.

        Copies are collected from the local store and from every node that answers the
        lookup, so one dishonest storing node cannot hide a good record behind a forgery.
        """
        local = self.storage.get(digest(key))

        async def run() -> list[str]:
            self._need_running()
            return await self._network_values(key)

        def choose(remote: list[str]) -> Deferred[Record | None]:
            votes: Counter[str] = Counter(value for value in remote if isinstance(value, str))
            if isinstance(local, str):
                votes[local] += 1
            return self._choose(key, votes)

        return self._run(run()).addCallback(choose)

    def add_to_bucket(self, key: str, entries: dict[str, int]) -> Deferred[bool]:
        """Publish entries into an index bucket; storing nodes merge them."""
        return self._set_value(key, make_bucket(key, merge_entries(entries, now=self.now())))

    def get_bucket(self, key: str) -> Deferred[dict[str, int]]:
        """Live entries of an index bucket: local copy merged with the network's."""
        local = self.storage.get(digest(key))

        async def run() -> list[Any]:
            self._need_running()
            return await self._network_values(key)

        def merge(remote: list[Any]) -> dict[str, int]:
            parts = []
            for value in [local, *remote]:
                if value is None:
                    continue
                try:
                    parts.append(parse_bucket(value, key)[1])
                except RecordRejected as exc:
                    self.stats.read_rejected.add(exc.reason)
            return merge_entries(*parts, now=self.now())

        return self._run(run()).addCallback(merge)

    # -- internals -------------------------------------------------------------------

    def _set_value(self, key: str, value: str) -> Deferred[bool]:
        async def run() -> bool:
            self._need_running()
            if not self.neighbours():
                # Alone (a seed before anyone joined): keep it here, or it is lost.
                self.storage[digest(key)] = value
                return False
            return bool(await self._server.set(key, value))

        return self._run(run())

    async def _network_values(self, key: str) -> list[Any]:
        """Every distinct value the first answering round holds (no local shortcut)."""
        node = KadNode(digest(key))
        nearest = self._server.protocol.router.find_neighbors(node)
        if not nearest:
            return []
        crawl = AllValuesCrawl(self._server.protocol, node, nearest, self._server.ksize, self._server.alpha)
        return list(await crawl.find() or [])

    @inlineCallbacks
    def _choose(self, key: str, votes: Counter[str]) -> Any:
        """Verify every copy; try publishers by (known owner, votes), newest revision each."""
        groups: dict[tuple[str, str], list[Record]] = {}
        weight: Counter[tuple[str, str]] = Counter()
        for value, count in votes.items():
            try:
                record = check_record(value, key, self.now())
            except RecordRejected as exc:
                self.stats.read_rejected.add(exc.reason)
                log.info("ignored DHT record under %s: %s", key, exc)
                continue
            group = (record.publisher, record.public_key)
            groups.setdefault(group, []).append(record)
            weight[group] += count
        known = self._known_owner(key)

        def rank(group: tuple[str, str]) -> tuple[bool, int]:
            return (group[0] != known, -weight[group])

        for group in sorted(groups, key=rank):
            best = max(groups[group], key=lambda r: r.revision)
            if known is not None and OWNERSHIP[best.type] == FIRST_COME and best.publisher != known:
                self.stats.read_rejected.add("owner")
                log.info("ignored DHT record %s: held by %s, not %s", key, known, best.publisher)
                continue
            checked = yield self._check_identity(best)
            if checked is not None:
                self._remember_owner(checked)
                return checked
        return None

    def _check_identity(self, record: Record) -> Deferred[Record | None]:
        if self.identity_lookup is None:
            return succeed(record)
        return self.identity_lookup(record.publisher).addCallbacks(
            self._identity_found, self._identity_failed, callbackArgs=(record,), errbackArgs=(record,))

    def _identity_found(self, public_key: PublicKey, record: Record) -> Record | None:
        try:
            matches = public_key == PublicKey.from_pem(record.public_key)
        except BadKeyError:
            matches = False
        if not matches:
            self.stats.read_rejected.add("identity-mismatch")
            log.info("ignored DHT record %s: key is not %s's", record.key, record.publisher)
            return None
        return record.with_identity_verified()

    def _identity_failed(self, failure: Failure, record: Record) -> None:
        self.stats.read_rejected.add("identity-unresolved")
        log.info("ignored DHT record %s: identity of %s unavailable: %s",
                 record.key, record.publisher, failure.getErrorMessage())
        return None

    def _known_owner(self, key: str) -> str | None:
        known = self._known_owners.get(key)
        return known[0] if known is not None and known[1] > self.now() else None

    def _remember_owner(self, record: Record) -> None:
        if OWNERSHIP.get(record.type) != FIRST_COME:
            return
        self._known_owners.pop(record.key, None)
        self._known_owners[record.key] = (record.publisher, record.expires)
        while len(self._known_owners) > KNOWN_OWNERS_LIMIT:
            self._known_owners.popitem(last=False)

    def _need_running(self) -> None:
        if not self.running or self._server.protocol is None:
            raise DhtError("the DHT is not running")

    def _run(self, coro: Coroutine[Any, Any, T]) -> Deferred[T]:
        """Run a coroutine on the loop with the operation deadline; errors become DhtError."""
        async def bounded() -> T:
            try:
                return await asyncio.wait_for(coro, self.op_timeout)
            except TimeoutError:
                raise DhtError(f"DHT operation timed out after {self.op_timeout:g} s") from None
            except OSError as exc:
                raise DhtError(f"DHT network error: {exc}") from exc

        task = self._loop.create_task(bounded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # A task cancelled before it ran never awaited ``coro``: close it quietly.
        task.add_done_callback(lambda done: coro.close() if done.cancelled() else None)
        return Deferred.fromFuture(task)
