"""Packet counters and the recent-packets log behind ``packets_stats()``/``packets_list()``.

Counter meanings (the spec's keys, defined here since the spec only shows zeros):

* ``in.totalpackets/totalbytes``: packets accepted (parsed, fresh, signature verified).
* ``in.unknownpackets/unknownbytes``: input we could not attribute to a known peer:
  garbage bytes, oversize frames, partial frames shed over the TCP buffer budget
  (``buffer_full``), a creator whose identity could not be found.
* ``in.failedpackets``: attributable input that was dropped anyway (bad signature,
  stale date, wrong recipient, a handler that crashed). Duplicates are not failures:
  retries after a lost Ack are normal, they only show under ``dropped``.
* ``out.totalpackets/totalbytes``: every transmission handed to a transport (retries
  included, as they use the link too).
* ``out.failedpackets``: outbox calls that ended in error (timeout after retries, no
  route); ``out.unknownpackets/unknownbytes``: sends to a peer whose identity could not
  be found.
* ``<idurl>``: packets counted per peer, accepted in / transmitted out.
* ``dropped``: incoming drops by reason (extra key; idurls never collide with it).

The per-peer tables are bounded (oldest peer forgotten first) so a stream of forged
creator idurls cannot grow memory.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter, OrderedDict, deque
from typing import Any

MAX_PEERS = 1000
RECENT_PACKETS = 200

# Drop reasons that count as "unknown" input rather than "failed".
UNKNOWN_REASONS = frozenset({"garbage", "oversize", "buffer_full", "unknown_creator"})
NOT_FAILURES = frozenset({"duplicate", "starting"})


class _Direction:
    """Totals for one direction plus a bounded per-peer table."""

    def __init__(self) -> None:
        self.total_packets = 0
        self.total_bytes = 0
        self.failed_packets = 0
        self.unknown_packets = 0
        self.unknown_bytes = 0
        self.per_peer: OrderedDict[str, int] = OrderedDict()

    def count_peer(self, idurl: str) -> None:
        self.per_peer[idurl] = self.per_peer.get(idurl, 0) + 1
        self.per_peer.move_to_end(idurl)
        while len(self.per_peer) > MAX_PEERS:
            self.per_peer.popitem(last=False)

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = dict(self.per_peer)
        result.update({
            "failedpackets": self.failed_packets,
            "totalbytes": self.total_bytes,
            "totalpackets": self.total_packets,
            "unknownbytes": self.unknown_bytes,
            "unknownpackets": self.unknown_packets,
        })
        return result


class PacketStats:
    """Counters of one node's gateway; plain numbers, cheap to update per packet."""

    def __init__(self) -> None:
        self.incoming = _Direction()
        self.outgoing = _Direction()
        self.dropped: Counter[str] = Counter()

    def received(self, idurl: str, size: int) -> None:
        self.incoming.total_packets += 1
        self.incoming.total_bytes += size
        self.incoming.count_peer(idurl)

    def dropped_in(self, reason: str, size: int) -> None:
        self.dropped[reason] += 1
        if reason in UNKNOWN_REASONS:
            self.incoming.unknown_packets += 1
            self.incoming.unknown_bytes += size
        elif reason not in NOT_FAILURES:
            self.incoming.failed_packets += 1

    def sent(self, idurl: str, size: int) -> None:
        self.outgoing.total_packets += 1
        self.outgoing.total_bytes += size
        self.outgoing.count_peer(idurl)

    def send_failed(self) -> None:
        self.outgoing.failed_packets += 1

    def send_unknown(self, size: int) -> None:
        self.outgoing.failed_packets += 1
        self.outgoing.unknown_packets += 1
        self.outgoing.unknown_bytes += size

    def as_api(self) -> dict[str, Any]:
        incoming = self.incoming.as_dict()
        incoming["dropped"] = dict(sorted(self.dropped.items()))
        return {"in": incoming, "out": self.outgoing.as_dict()}


@dataclasses.dataclass
class PacketRecord:
    """One line of ``packets_list()``; mutable while the packet is in flight."""

    direction: str  # "in" | "out"
    command: str
    packet_id: str
    remote: str  # the peer's idurl (creator for "in", recipient for "out")
    size: int
    state: str  # out: sending, waiting-ack, acked, failed, sent; in: received, dropped-<reason>
    proto: str = ""
    attempts: int = 0
    started: float = dataclasses.field(default_factory=time.time)

    def as_api(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class PacketLog:
    """Packets in flight plus a bounded tail of finished ones, newest last."""

    def __init__(self, recent: int = RECENT_PACKETS) -> None:
        self._active: dict[int, PacketRecord] = {}
        self._recent: deque[PacketRecord] = deque(maxlen=recent)

    def start(self, record: PacketRecord) -> PacketRecord:
        self._active[id(record)] = record
        return record

    def finish(self, record: PacketRecord, state: str) -> None:
        record.state = state
        if self._active.pop(id(record), None) is not None:
            self._recent.append(record)

    def add_finished(self, record: PacketRecord) -> None:
        self._recent.append(record)

    def as_api(self) -> list[dict[str, Any]]:
        return [r.as_api() for r in (*self._recent, *self._active.values())]
