"""What a DHT node keeps for the network: kademlia's storage, guarded by the record rules.

kademlia stores whatever any peer sends (``rpc_store`` always answers True). This store
applies the checks of :mod:`bitdust.dht.records` first, so an honest storing node
never lets a forged record replace a good one: bad signatures, records filed under the
wrong key, another publisher's attempt to take an owned key, replays of older
revisions, and expired or oversized values are refused and counted. Index buckets are
merged rather than replaced (:mod:`bitdust.dht.index`).

Readers check again (:mod:`bitdust.dht.kad`): a storing node may be dishonest.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from kademlia.storage import IStorage

from bitdust.dht.index import is_index_key, make_bucket, merge_entries, parse_bucket
from bitdust.dht.records import RecordRejected, RejectCounter, check_overwrite, check_record, parse_record

log = logging.getLogger(__name__)

MAX_ITEMS = 20000
"""Keys one node keeps for the network; the oldest go first beyond it (bounded memory)."""


class _Item(NamedTuple):
    birthday: float  # monotonic, what kademlia's republishing asks about
    expires: float  # wall clock, from the record
    value: str


class GuardedStorage(IStorage):
    """kademlia ``IStorage`` keyed by the SHA-1 digest of the DHT key.

    ``key_of`` maps a digest back to the text key: records carry their key, and the
    digest of that key must equal the digest they are stored under.
    """

    def __init__(self, now: Callable[[], float], digest: Callable[[str], bytes],
                 refused: RejectCounter | None = None, max_items: int = MAX_ITEMS) -> None:
        self._now = now
        self._digest = digest
        self.refused = refused if refused is not None else RejectCounter()
        self._max_items = max_items
        self._data: OrderedDict[bytes, _Item] = OrderedDict()

    # -- kademlia interface ----------------------------------------------------------

    def __setitem__(self, dkey: bytes, value: Any) -> None:
        try:
            stored, expires = self._accept(dkey, value)
        except RecordRejected as exc:
            self.refused.add(exc.reason)
            log.info("refused to store %s: %s", dkey.hex()[:12], exc)
            return
        self._data.pop(dkey, None)
        self._data[dkey] = _Item(time.monotonic(), expires, stored)
        while len(self._data) > self._max_items:
            self._data.popitem(last=False)
            self.refused.add("evicted")

    def __getitem__(self, dkey: bytes) -> str:
        self.cull()
        return self._data[dkey].value

    def get(self, dkey: bytes, default: Any = None) -> Any:
        self.cull()
        item = self._data.get(dkey)
        return default if item is None else item.value

    def iter_older_than(self, seconds_old: float) -> list[tuple[bytes, str]]:
        self.cull()
        limit = time.monotonic() - seconds_old
        return [(dkey, item.value) for dkey, item in self._data.items() if item.birthday <= limit]

    def __iter__(self) -> Iterator[tuple[bytes, str]]:
        self.cull()
        return iter([(dkey, item.value) for dkey, item in self._data.items()])

    def __len__(self) -> int:
        return len(self._data)

    def __bool__(self) -> bool:
        # kademlia does ``storage or ForgetfulStorage()``: an empty store must stay truthy.
        return True

    # -- rules -----------------------------------------------------------------------

    def cull(self) -> None:
        now = self._now()
        for dkey in [dkey for dkey, item in self._data.items() if item.expires <= now]:
            del self._data[dkey]

    def _accept(self, dkey: bytes, value: Any) -> tuple[str, float]:
        """(value to store, its expiry), or RecordRejected."""
        now = self._now()
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if not isinstance(value, str):
            raise RecordRejected("malformed", f"value of type {type(value).__name__}")
        if value.startswith('{"entries"'):  # canonical JSON sorts keys: buckets start so
            return self._merge_bucket(dkey, value, now)
        record = check_record(value, None, now)
        if self._digest(record.key) != dkey:
            raise RecordRejected("wrong-key", f"{record.key!r} stored under another digest")
        old_item = self._data.get(dkey)
        if old_item is not None and old_item.expires > now:
            check_overwrite(parse_record(old_item.value), record, now)
        return record.to_json(), record.expires

    def _merge_bucket(self, dkey: bytes, value: str, now: float) -> tuple[str, float]:
        key, entries = parse_bucket(value)
        if self._digest(key) != dkey or not is_index_key(key):
            raise RecordRejected("wrong-key", f"bucket {key!r} stored under another digest")
        old_item = self._data.get(dkey)
        old_entries = parse_bucket(old_item.value, key)[1] if old_item is not None else {}
        merged = merge_entries(old_entries, entries, now=now)
        if not merged:
            raise RecordRejected("expired", f"bucket {key} has no live entries")
        return make_bucket(key, merged), max(merged.values())
