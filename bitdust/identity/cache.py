"""The identity cache: other nodes' identity documents, fetched over HTTP and kept on disk.

Every packet is checked against its creator's public key, so this cache is what the
whole network trusts. Its rules, in order of strength:

- A document is accepted only if its signature verifies against its own key.
- A document fetched from an idurl must list that idurl among its sources: a server
  cannot hand out somebody else's document under a name it chose.
- Revisions only go forward: a lower revision than the cached one is refused (a replay
  of an old document would bring back old contacts).
- The key behind an idurl is pinned once the idurl's own server served it: a document
  with another key for the same idurl is an error, never a silent replacement. Key
  rotation would need a hand-over signed by the old key, which this build does not
  have; an operator who knows better can :meth:`IdentityCache.remove` the entry.

Documents that only arrived in a peer's ``Identity`` packet (:meth:`IdentityCache.add`
for an idurl we never fetched) are trust-on-first-use: kept in memory, not on disk, a
bounded number of them, and replaced by what the idurl's server says on the next fetch.
That way a peer can talk to us before we fetched it, but cannot poison the disk cache
for a name that is not its own.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, TimeoutError, fail, inlineCallbacks, succeed
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import Agent

from bitdust.identity.document import MAX_XML_BYTES, Identity, IdentityError
from bitdust.identity.http import BodyTooLarge, read_capped
from bitdust.identity.idurl import IdurlError, make_idurl, parse_idurl
from bitdust.util.fs import atomic_write

log = logging.getLogger(__name__)

MAX_UNCONFIRMED = 1000
"""Peer-sent identities kept in memory until their server confirms them (oldest dropped)."""


class IdentityFetchError(RuntimeError):
    """An idurl could not be fetched or its document was refused; the message says why."""


def cache_file_name(idurl: str) -> str:
    """``<name>@<host>_<port>.xml``: readable and reversible (hosts have no '@' or '_')."""
    host, port, name = parse_idurl(idurl)
    return f"{name}@{host}_{port}.xml"


def idurl_from_file_name(file_name: str) -> str:
    stem = file_name.removesuffix(".xml")
    name, _, netloc = stem.partition("@")
    host, _, port = netloc.rpartition("_")
    if not port.isdigit():
        raise IdurlError(f"not an identity cache file name: {file_name!r}")
    return make_idurl(host, int(port), name)


class IdentityCache:
    """Identities of other nodes by idurl. Independent of Node so tests and tools can use
    it alone; the node keeps one at ``node.identity_cache``."""

    def __init__(self, folder: Path, reactor: Any, clock: Any = None, agent: Any = None,
                 max_body: int = MAX_XML_BYTES) -> None:
        self.folder = Path(folder)
        self._reactor = reactor
        self._clock = clock if clock is not None else reactor
        self._agent = agent
        self._max_body = max_body
        self._confirmed: dict[str, Identity] = {}
        self._unconfirmed: OrderedDict[str, Identity] = OrderedDict()
        self._waiters: dict[str, list[Deferred[Identity]]] = {}
        self._load()

    # -- queries ---------------------------------------------------------------------

    def get_cached(self, idurl: str) -> Identity | None:
        return self._confirmed.get(idurl) or self._unconfirmed.get(idurl)

    def is_confirmed(self, idurl: str) -> bool:
        """True when the document came from (or was pinned by) the idurl's own server."""
        return idurl in self._confirmed

    def idurls(self) -> list[str]:
        return sorted({*self._confirmed, *self._unconfirmed})

    def get(self, idurl: str, timeout: float = 10.0) -> Deferred[Identity]:
        """The cached identity, else a fetch."""
        cached = self.get_cached(idurl)
        return succeed(cached) if cached is not None else self.fetch(idurl, timeout)

    # -- fetching ---------------------------------------------------------------------

    def fetch(self, idurl: str, timeout: float = 10.0) -> Deferred[Identity]:
        """GET the idurl, check it (module rules), cache it. Fails with IdentityFetchError.

        Concurrent fetches of one idurl share one HTTP request.
        """
        try:
            parse_idurl(idurl)
        except IdurlError as exc:
            return fail(IdentityFetchError(str(exc)))
        mine: Deferred[Identity] = Deferred()
        waiters = self._waiters.get(idurl)
        if waiters is not None:
            waiters.append(mine)
            return mine
        self._waiters[idurl] = [mine]
        self._download(idurl, timeout).addCallback(self._accept_fetched, idurl).addBoth(self._wake, idurl)
        return mine

    def _wake(self, result: Identity | Failure, idurl: str) -> None:
        for waiter in self._waiters.pop(idurl, []):
            if waiter.called:
                continue  # that caller cancelled or timed out already
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    @inlineCallbacks
    def _download(self, idurl: str, timeout: float) -> Any:
        if self._agent is None:
            self._agent = Agent(self._reactor, connectTimeout=timeout)
        request = self._agent.request(b"GET", idurl.encode("ascii"))
        request.addTimeout(timeout, self._clock)
        try:
            response = yield request
            if response.code != 200:
                response.deliverBody(_Discard())
                raise IdentityFetchError(f"{idurl}: server answered HTTP {response.code} {_phrase(response)}")
            reading = read_capped(response, self._max_body)
            reading.addTimeout(timeout, self._clock)
            body = yield reading
        except IdentityFetchError:
            raise
        except BodyTooLarge as exc:
            raise IdentityFetchError(f"{idurl}: {exc}") from None
        except TimeoutError:
            raise IdentityFetchError(f"{idurl}: no answer within {timeout:g} s") from None
        except Exception as exc:
            raise IdentityFetchError(f"{idurl}: cannot fetch: {_reason(exc)}") from None
        try:
            return Identity.from_xml(body)
        except IdentityError as exc:
            raise IdentityFetchError(f"{idurl}: bad identity document: {exc}") from None

    def _accept_fetched(self, identity: Identity, idurl: str) -> Identity:
        if idurl not in identity.sources:
            raise IdentityFetchError(f"{idurl}: the document served there does not list it among its sources")
        if not identity.verify():
            raise IdentityFetchError(f"{idurl}: the identity's signature does not verify")
        confirmed = self._confirmed.get(idurl)
        if confirmed is not None:
            problem = _update_problem(confirmed, identity)
            if problem:
                raise IdentityFetchError(f"{idurl}: {problem}")
            if identity.revision == confirmed.revision and identity == confirmed:
                return confirmed
        unconfirmed = self._unconfirmed.pop(idurl, None)
        if unconfirmed is not None and unconfirmed.public_key != identity.public_key:
            log.warning("%s: a peer had sent a document with another key; its server wins", idurl)
        self._store(idurl, identity)
        return identity

    # -- documents from peers -----------------------------------------------------------

    def add(self, identity: Identity) -> bool:
        """Take a document a peer sent (an ``Identity`` packet). False when refused.

        A known idurl takes a same-key, same-or-newer document; an unknown one is kept
        unconfirmed (see the module notes) until its server is asked.
        """
        idurl = identity.idurl
        if not identity.verify():
            log.info("refused identity for %s: bad signature", idurl)
            return False
        confirmed = self._confirmed.get(idurl)
        if confirmed is not None:
            problem = _update_problem(confirmed, identity)
            if problem:
                log.info("refused identity for %s: %s", idurl, problem)
                return False
            if identity != confirmed:
                self._store(idurl, identity)
            return True
        unconfirmed = self._unconfirmed.get(idurl)
        if unconfirmed is not None:
            problem = _update_problem(unconfirmed, identity)
            if problem:
                log.info("refused identity for %s: %s", idurl, problem)
                return False
        self._unconfirmed[idurl] = identity
        self._unconfirmed.move_to_end(idurl)
        while len(self._unconfirmed) > MAX_UNCONFIRMED:
            self._unconfirmed.popitem(last=False)
        return True

    def remove(self, idurl: str) -> None:
        """Forget an idurl, on disk too (the way to accept a re-keyed node by hand)."""
        self._unconfirmed.pop(idurl, None)
        if self._confirmed.pop(idurl, None) is not None:
            (self.folder / cache_file_name(idurl)).unlink(missing_ok=True)

    # -- disk ------------------------------------------------------------------------

    def _store(self, idurl: str, identity: Identity) -> None:
        atomic_write(self.folder / cache_file_name(idurl), identity.to_xml())
        self._confirmed[idurl] = identity

    def _load(self) -> None:
        """Read what earlier runs cached; files that no longer check out are skipped."""
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("*.xml")):
            try:
                idurl = idurl_from_file_name(path.name)
                identity = Identity.from_xml(path.read_bytes())
            except (OSError, IdurlError, IdentityError) as exc:
                log.warning("skipping identity cache file %s: %s", path, exc)
                continue
            if idurl not in identity.sources or not identity.verify():
                log.warning("skipping identity cache file %s: it does not check out", path)
                continue
            self._confirmed[idurl] = identity


def _update_problem(cached: Identity, new: Identity) -> str:
    """Why ``new`` may not replace ``cached`` (empty when it may)."""
    if new.public_key != cached.public_key:
        return "the document has another public key than the one known for this idurl"
    if new.revision < cached.revision:
        return f"revision {new.revision} is older than the known revision {cached.revision}"
    return ""


def _phrase(response: Any) -> str:
    phrase = response.phrase
    return phrase.decode("latin-1") if isinstance(phrase, bytes) else str(phrase)


def _reason(exc: BaseException) -> str:
    # Agent wraps connection errors in ResponseNeverReceived([Failure, ...]).
    reasons = getattr(exc, "reasons", None)
    if reasons:
        return "; ".join(r.getErrorMessage() for r in reasons)
    return str(exc) or type(exc).__name__


class _Discard(Protocol):
    """Drops an unwanted response body (an error page) by closing the connection."""

    def connectionMade(self) -> None:
        self.transport.stopProducing()  # type: ignore[union-attr]
