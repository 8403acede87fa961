"""Peers this node has a lasting relationship with (its suppliers, its customers, ...).

Such peers keep our identity document cached for as long as the relationship lasts and
answer to the contacts in it. When our contacts change (a restart on new ports, an
``identity restore`` on another machine) they must get our new Identity packet at once,
else they keep replying to the old contacts and every request times out. The
p2p_connector sends it; it learns who to send it to from this registry, which the
services fill with callables. That way p2p code never imports storage code, and a
service that stops simply removes its source.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

PeerSource = Callable[[], Iterable[str]]


class RelationshipPeers:
    """Named sources of idurls plus listeners told when a source's set may have changed."""

    def __init__(self) -> None:
        self._sources: dict[str, PeerSource] = {}
        self._listeners: list[Callable[[], None]] = []

    def add_source(self, name: str, source: PeerSource) -> None:
        """``source()`` lists the idurls of the relationship ``name`` (read when needed)."""
        self._sources[name] = source
        self.changed()

    def remove_source(self, name: str) -> None:
        self._sources.pop(name, None)

    def peers(self, limit: int) -> list[str]:
        """Up to ``limit`` distinct idurls over all sources, in source order; a source that
        fails is skipped (it belongs to a service that is stopping)."""
        found: dict[str, None] = {}
        for name, source in list(self._sources.items()):
            try:
                for idurl in source():
                    if len(found) >= limit:
                        return list(found)
                    if idurl:
                        found[idurl] = None
            except Exception as exc:
                log.debug("relationship source %s failed: %s", name, exc)
        return list(found)

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        self._listeners = [fn for fn in self._listeners if fn is not listener]

    def changed(self) -> None:
        """A source got new peers (a supplier hired, a customer accepted)."""
        for listener in list(self._listeners):
            listener()
