"""Index buckets: how a node finds *some* available suppliers in a DHT that cannot list keys.

Kademlia only answers "what is under this key". To find random nodes, every available
supplier also adds its idurl to one of :data:`INDEX_BUCKETS` well-known keys
``suppliers-index:<k>``, with ``k`` derived from its idurl (so re-publishing refreshes
one entry instead of adding another). A reader picks buckets in random order.

The same buckets under ``nodes-index:<k>`` list every online node, not only suppliers
(:mod:`bitdust.p2p.presence`): broadcasts need to know who is out there.

A bucket is a set of ``idurl -> expires`` hints, JSON ``{"type": "index", "key": ...,
"entries": {...}}``. Several publishers write one bucket, so no single signature can
cover it: storing nodes **merge** what they receive (union, latest expiry wins, expired
entries dropped, at most :data:`MAX_ENTRIES` kept, the ones living longest), which makes
concurrent publications commute instead of overwriting each other.

Limits (by design, documented for the supplier lookup built on top):

- Entries are unauthenticated hints. A reader trusts an idurl only after reading and
  verifying that idurl's own signed ``supplier:<idurl>`` record; a junk entry costs one
  lookup and is counted as rejected.
- A vandal can crowd a bucket with junk (up to :data:`MAX_ENTRIES`, and only as long as
  it keeps refreshing them, since expiries are clamped to :data:`INDEX_TTL`): the lookup
  degrades but never returns an unverified node.
- Capacity is ``INDEX_BUCKETS * MAX_ENTRIES`` (512) live suppliers; in a larger network
  each bucket keeps the most recently refreshed ones, which is still a random sample.
- Two storing nodes may hold different unions until the next re-publication; readers
  merge what they see locally with what the network answers.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from bitdust.dht.records import RecordRejected, canonical_json
from bitdust.identity.idurl import is_idurl

INDEX_BUCKETS = 8
MAX_ENTRIES = 64
"""64 idurls of ~50 bytes keep a bucket near 4 KB, inside one 8 KB kademlia RPC."""
INDEX_TTL = 30 * 60
INDEX_PREFIX = "suppliers-index:"
NODES_INDEX_PREFIX = "nodes-index:"
"""Every online node (not only suppliers) announces itself here: broadcasts use it."""
INDEX_PREFIXES = (INDEX_PREFIX, NODES_INDEX_PREFIX)


def index_keys(prefix: str = INDEX_PREFIX) -> list[str]:
    return [f"{prefix}{k}" for k in range(INDEX_BUCKETS)]


def bucket_key_for(idurl: str, prefix: str = INDEX_PREFIX) -> str:
    """A stable bucket per idurl, spread evenly by a hash."""
    k = hashlib.sha256(idurl.encode("utf-8")).digest()[0] % INDEX_BUCKETS
    return f"{prefix}{k}"


def is_index_key(key: str) -> bool:
    return any(key in index_keys(prefix) for prefix in INDEX_PREFIXES)


def make_bucket(key: str, entries: dict[str, int]) -> str:
    return canonical_json({"type": "index", "key": key, "entries": entries}).decode("ascii")


def parse_bucket(value: Any, expected_key: str | None = None) -> tuple[str, dict[str, int]]:
    """(key, entries) of a stored bucket; RecordRejected for anything malformed.

    Malformed entries are dropped one by one rather than failing the whole bucket, so a
    single junk entry cannot hide the good ones.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str) or len(value) > 7000:
        raise RecordRejected("malformed", "index bucket is not text of a sane size")
    try:
        obj = json.loads(value)
    except ValueError:
        raise RecordRejected("malformed", "index bucket is not JSON") from None
    if not isinstance(obj, dict) or obj.get("type") != "index" or not isinstance(obj.get("entries"), dict):
        raise RecordRejected("malformed", "not an index bucket")
    key = obj.get("key")
    if not isinstance(key, str) or not is_index_key(key):
        raise RecordRejected("wrong-key", f"{key!r} is not an index key")
    if expected_key is not None and key != expected_key:
        raise RecordRejected("wrong-key", f"bucket {key!r} found under {expected_key!r}")
    entries = {
        idurl: expires for idurl, expires in obj["entries"].items()
        if is_idurl(idurl) and isinstance(expires, int) and not isinstance(expires, bool)
    }
    return key, entries


def merge_entries(*parts: dict[str, int], now: float) -> dict[str, int]:
    """Union of bucket entries: latest expiry per idurl, clamped to ``now + INDEX_TTL``,
    expired ones dropped, the :data:`MAX_ENTRIES` living longest kept."""
    merged: dict[str, int] = {}
    ceiling = int(now + INDEX_TTL)
    for part in parts:
        for idurl, expires in part.items():
            expires = min(expires, ceiling)
            if expires > now and expires > merged.get(idurl, 0):
                merged[idurl] = expires
    best = sorted(merged.items(), key=lambda item: (-item[1], item[0]))[:MAX_ENTRIES]
    return dict(sorted(best))
