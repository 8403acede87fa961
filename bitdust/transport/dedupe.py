"""Recently seen packets, to drop duplicates and re-send the reply they got.

A retry usually means our Ack was lost, so a duplicate is answered with the reply we
already made instead of being dispatched twice. The table is a bounded LRU: together
with the freshness window of the gateway it stops replays; a replay of a packet that
fell out of the table but is still fresh is the accepted limit (size it to the
packet rate times the window).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bitdust.transport.packet import Packet

SeenKey = tuple[str, str, str]  # (creator idurl, command, packet id)


class SeenPackets:
    def __init__(self, limit: int = 10_000) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self._limit = limit
        self._seen: OrderedDict[SeenKey, Packet | None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, key: SeenKey) -> bool:
        return key in self._seen

    def add(self, key: SeenKey) -> None:
        self._seen[key] = self._seen.get(key)
        self._seen.move_to_end(key)
        while len(self._seen) > self._limit:
            self._seen.popitem(last=False)

    def set_reply(self, key: SeenKey, reply: Packet) -> None:
        """Remember our reply (only for a key still in the table); its frame is kept
        with it, so answering a retry costs no signing and no copy."""
        if key in self._seen:
            self._seen[key] = reply

    def reply_for(self, key: SeenKey) -> Packet | None:
        return self._seen.get(key)
