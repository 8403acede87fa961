"""kademlia, adapted: shorter RPC timeouts, hostile datagrams counted, every value of a
lookup returned (see :mod:`bitdust.dht.kad` for why), library logging kept quiet."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from kademlia.crawling import ValueSpiderCrawl
from kademlia.network import Server
from kademlia.node import Node as KadNode
from kademlia.protocol import KademliaProtocol

from bitdust.dht.storage import GuardedStorage
from bitdust.identity.idurl import split_host_port

log = logging.getLogger(__name__)

NO_REPLY = (False, None)
"""What kademlia's ``call_*`` return when the peer did not answer."""


class GuardedProtocol(KademliaProtocol):
    """kademlia's protocol with a shorter RPC timeout, and garbage datagrams counted
    instead of raising inside an unobserved asyncio task."""

    def __init__(self, source_node: KadNode, storage: GuardedStorage, ksize: int, rpc_timeout: float) -> None:
        super().__init__(source_node, storage, ksize)
        self._wait_timeout = rpc_timeout
        self._refused = storage.refused
        self.closed = False
        """Set as the node stops: kademlia's own tasks still scheduled then (a store to a
        newcomer from ``welcome_if_new``, a table refresh) get "no reply" without sending:
        the socket is closing, and asyncio's unconnected UDP transport raises from
        ``sendto`` once it is closed, inside tasks nobody awaits."""

    async def call_find_node(self, node_to_ask: KadNode, node_to_find: KadNode) -> Any:
        return NO_REPLY if self.closed else await super().call_find_node(node_to_ask, node_to_find)

    async def call_find_value(self, node_to_ask: KadNode, node_to_find: KadNode) -> Any:
        return NO_REPLY if self.closed else await super().call_find_value(node_to_ask, node_to_find)

    async def call_ping(self, node_to_ask: KadNode) -> Any:
        return NO_REPLY if self.closed else await super().call_ping(node_to_ask)

    async def call_store(self, node_to_ask: KadNode, key: bytes, value: Any) -> Any:
        return NO_REPLY if self.closed else await super().call_store(node_to_ask, key, value)

    async def _solve_datagram(self, datagram: bytes, address: tuple[str, int]) -> None:
        try:
            await super()._solve_datagram(datagram, address)
        except Exception as exc:  # umsgpack errors have no common base worth naming
            self._refused.add("garbage-datagram")
            log.debug("garbage datagram from %s: %s", address, exc)

    async def _accept_request(self, msg_id: bytes, data: Any, address: tuple[str, int]) -> None:
        try:
            await super()._accept_request(msg_id, data, address)
        except Exception as exc:
            self._refused.add("bad-request")
            log.debug("bad request from %s: %s", address, exc)


class AllValuesCrawl(ValueSpiderCrawl):
    """Returns every distinct value found instead of kademlia's most common one, and
    does not cache it on the nearest node: the reader verifies first."""

    async def _handle_found_values(self, values: list[Any]) -> list[Any]:
        hashable = [value for value in values if isinstance(value, str | bytes)]
        return [value for value, _count in Counter(hashable).most_common()]


class KadServer(Server):
    def __init__(self, rpc_timeout: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rpc_timeout = rpc_timeout

    def _create_protocol(self) -> GuardedProtocol:
        return GuardedProtocol(self.node, self.storage, self.ksize, self._rpc_timeout)


def set_library_log_level(debug_level: int) -> None:
    """kademlia and rpcudp log every RPC at INFO: keep them at WARNING unless the
    user asked for deep debugging (``logs/debug-level`` >= 8)."""
    level = logging.DEBUG if debug_level >= 8 else logging.WARNING
    for name in ("kademlia", "rpcudp"):
        logging.getLogger(name).setLevel(level)


def parse_seeds(seeds: Sequence[str | tuple[str, int]]) -> list[tuple[str, int]]:
    result = []
    for seed in seeds:
        result.append(split_host_port(seed.strip()) if isinstance(seed, str) else (seed[0], int(seed[1])))
    return result
