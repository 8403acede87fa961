"""Nicknames in the DHT: ``nickname:<name>`` -> a record signed by the holder.

The first publisher whose valid record holds a nickname owns it while that record lives
(``records.DEFAULT_TTL``, 30 minutes). :class:`NicknameHolder` keeps it alive by
re-publishing every :data:`REPUBLISH_SECONDS` while the node runs; when the node stops,
nothing deletes the record (kademlia has no delete): the nickname frees itself when the
last record expires.

Known limit: two nodes claiming one free nickname in the same second may each win on
a different part of the network; the next re-publication settles it on most nodes,
since storing nodes keep the first holder they saw.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from bitdust.automats.automat import ANY, Automat, AutomatRegistry, Timer, Transition
from bitdust.crypto.keys import PrivateKey
from bitdust.dht.kad import DhtNode
from bitdust.dht.records import DEFAULT_TTL, Record, nickname_key, normalize_nickname, sign_record

log = logging.getLogger(__name__)

REPUBLISH_SECONDS = DEFAULT_TTL / 3
RETRY_SECONDS = 10.0
"""Also how soon a holder started before the node's identity was loaded tries again."""

Whoami = Callable[[], "tuple[str, PrivateKey] | None"]
"""(my idurl, my key), or None while this node has no identity yet."""


class NicknameInfo(NamedTuple):
    nickname: str
    idurl: str
    expires: int


def info_of(record: Record) -> NicknameInfo:
    nickname = record.data.get("nickname")
    if not isinstance(nickname, str):
        nickname = record.owner_name()
    return NicknameInfo(nickname, record.publisher, record.expires)


def lookup_nickname(dht: DhtNode, nickname: str) -> Deferred[NicknameInfo | None]:
    """Who holds ``nickname`` (the nickname_observer of the original): a verified record's
    publisher, or None. RecordRejected('bad-nickname') for a malformed name."""
    key = nickname_key(nickname)
    return dht.get(key).addCallback(lambda record: info_of(record) if record is not None else None)


class NicknameHolder(Automat):
    """Registers one nickname for this node and keeps it registered.

    ``result`` says how the last attempt ended: ("registered", idurl), ("taken", other
    idurl) or ("failed", reason); a failure retries every :data:`RETRY_SECONDS`.
    """

    name = "nickname_holder"
    initial_state = "AT_STARTUP"
    transitions = {
        (ANY, "set"): [Transition("CHECKING", ("remember", "check"))],
        ("CHECKING", "free"): [Transition("PUBLISHING", ("publish",))],
        ("CHECKING", "taken"): [Transition("TAKEN", ("report_taken",))],
        ("CHECKING", "failed"): [Transition("RETRY", ("report_failed",))],
        ("PUBLISHING", "published"): [Transition("REGISTERED", ("report_registered",))],
        ("PUBLISHING", "failed"): [Transition("RETRY", ("report_failed",))],
        ("REGISTERED", "timer-republish"): [Transition("PUBLISHING", ("publish",))],
        ("RETRY", "timer-retry"): [Transition("CHECKING", ("check",))],
        (ANY, "stop"): [Transition("STOPPED", ("forget",))],
    }
    timers = {
        "timer-republish": Timer(REPUBLISH_SECONDS, ("REGISTERED",)),
        "timer-retry": Timer(RETRY_SECONDS, ("RETRY",)),
    }

    def __init__(self, clock: IReactorTime, registry: AutomatRegistry | None, dht: DhtNode,
                 whoami: Whoami) -> None:
        super().__init__(clock, registry)
        self.dht = dht
        # Asked on every attempt: the identity may be loaded (or renamed) after we start.
        self.whoami = whoami
        self.nickname = ""
        self.result: tuple[str, str] = ("", "")
        self.record: Record | None = None
        # Bumped on every "set": answers for an older nickname are dropped.
        self._generation = 0

    def register(self, nickname: str) -> Deferred[tuple[str, str]]:
        """Start holding ``nickname``; fires with ``result`` once the first attempt ends."""
        normalize_nickname(nickname)
        done = self.when_state("REGISTERED", "TAKEN", "RETRY", "STOPPED")
        self.event("set", nickname)
        return done.addCallback(lambda _state: self.result)

    # -- actions ---------------------------------------------------------------------

    def do_remember(self, nickname: str) -> None:
        self._generation += 1
        self.nickname = nickname
        self.record = None

    def do_check(self, *_args: Any) -> None:
        generation = self._generation
        me = self.whoami()
        if me is None:
            self.event("failed", "this node has no identity yet")
            return
        lookup = lookup_nickname(self.dht, self.nickname)

        def found(info: NicknameInfo | None) -> None:
            if generation != self._generation:
                return
            if info is not None and info.idurl != me[0]:
                self.event("taken", info.idurl)
            else:
                self.event("free")

        lookup.addCallbacks(found, self._failed, errbackArgs=(generation,))

    def do_publish(self, *_args: Any) -> None:
        generation = self._generation
        me = self.whoami()
        if me is None:
            self.event("failed", "this node has no identity yet")
            return
        idurl, key = me
        record = sign_record(key, idurl, "nickname", nickname_key(self.nickname),
                             {"nickname": self.nickname}, self.dht.now())
        sending = self.dht.set(record.key, record)

        def sent(_stored: bool) -> None:
            if generation == self._generation:
                self.record = record
                self.event("published")

        sending.addCallbacks(sent, self._failed, errbackArgs=(generation,))

    def do_report_registered(self, *_args: Any) -> None:
        idurl = self.record.publisher if self.record is not None else ""
        self.result = ("registered", idurl)
        log.info("nickname %r registered for %s", self.nickname, idurl)

    def do_report_taken(self, holder: str) -> None:
        self.result = ("taken", holder)
        log.info("nickname %r is taken by %s", self.nickname, holder)

    def do_report_failed(self, reason: str) -> None:
        self.result = ("failed", reason)
        log.warning("nickname %r not registered yet: %s", self.nickname, reason)

    def do_forget(self, *_args: Any) -> None:
        self._generation += 1
        self.result = ("failed", "stopped")

    def state_changed(self, old_state: str, new_state: str, event: str) -> None:
        # Here rather than in an action: waiters on STOPPED are told before timers and
        # listeners are dropped.
        if new_state == "STOPPED":
            self.destroy()

    def _failed(self, failure: Failure, generation: int) -> None:
        if generation == self._generation:
            self.event("failed", failure.getErrorMessage() or repr(failure.value))
