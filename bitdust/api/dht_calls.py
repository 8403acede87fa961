"""API calls answered by the DHT: nicknames. Kept apart from ``methods.py`` so that file
stays a table; the shapes are documented on the methods there."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import inlineCallbacks

from bitdust.api.results import error, ok
from bitdust.dht.kad import DhtError
from bitdust.dht.nicknames import lookup_nickname
from bitdust.dht.records import RecordRejected, normalize_nickname

if TYPE_CHECKING:
    from bitdust.node import Node
    from bitdust.services.dht import DhtService


def dht_service(node: Node, method: str) -> DhtService:
    """The running service_dht; ServiceUnavailable (an ERROR answer) otherwise."""
    from bitdust.services.dht import DhtService

    return node.services.running("service_dht", DhtService, method, lambda s: s.dht is not None)


@inlineCallbacks
def set_my_nickname(node: Node, nickname: Any) -> Any:
    service = dht_service(node, "set_my_nickname")
    try:
        normalize_nickname(nickname)
    except RecordRejected as exc:
        return error(f"bad nickname {nickname!r}: expected 3-32 characters of A-Z a-z 0-9 . _ -") \
            if exc.reason == "bad-nickname" else error(str(exc))
    if service.whoami() is None:
        return error("set_my_nickname: this node has no identity yet: run `bitdust identity create NAME`")
    outcome, detail = yield service.hold_nickname(nickname)
    if outcome == "registered":
        node.config.set("personal/nickname", nickname)
        return ok(f"nickname {nickname} registered", nickname=nickname, idurl=detail)
    if outcome == "taken":
        return error(f"nickname {nickname} is already taken by {detail}")
    node.config.set("personal/nickname", nickname)  # kept trying now and after a restart
    return error(f"nickname {nickname} is not registered yet ({detail}); the node keeps trying")


@inlineCallbacks
def find_peer_by_nickname(node: Node, nickname: Any) -> Any:
    service = dht_service(node, "find_peer_by_nickname")
    try:
        normalize_nickname(nickname)
    except RecordRejected:
        return error(f"bad nickname {nickname!r}: expected 3-32 characters of A-Z a-z 0-9 . _ -")
    try:
        info = yield lookup_nickname(service.running_dht(), nickname)
    except DhtError as exc:
        return error(f"nickname {nickname} could not be looked up: {exc}")
    if info is None:
        return error(f"nickname {nickname} was not found")
    return ok({"nickname": info.nickname, "idurl": info.idurl})
