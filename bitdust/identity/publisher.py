"""Publishing an identity to its servers from inside the reactor (non-blocking HTTP POST).

Each source idurl names the server that hosts it, so the document is POSTed to each of
its own sources: a known server that is not among the sources would refuse it anyway.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, DeferredList, TimeoutError, inlineCallbacks
from twisted.web.client import Agent, FileBodyProducer
from twisted.web.http_headers import Headers

from bitdust.identity.document import Identity
from bitdust.identity.http import read_capped

MAX_ANSWER = 4096


def post_one(agent: Any, clock: Any, url: str, body: bytes, timeout: float) -> Deferred[str]:
    """POST ``body`` to ``url``: "OK", or the reason it failed (never an errback)."""

    @inlineCallbacks
    def run() -> Any:
        request = agent.request(b"POST", url.encode("ascii"),
                                Headers({b"content-type": [b"text/xml; charset=utf-8"]}),
                                FileBodyProducer(BytesIO(body)))
        request.addTimeout(timeout, clock)
        response = yield request
        reading = read_capped(response, MAX_ANSWER)
        reading.addTimeout(timeout, clock)
        answer = yield reading
        if response.code in (200, 201):
            return "OK"
        return f"HTTP {response.code}: {answer.decode('utf-8', 'replace').strip()}"

    def failed(failure: Any) -> str:
        if failure.check(TimeoutError):
            return f"no answer within {timeout:g} s"
        if failure.check(CancelledError):
            return "cancelled"
        reasons = getattr(failure.value, "reasons", None)
        if reasons:
            return "cannot reach the server: " + "; ".join(r.getErrorMessage() for r in reasons)
        return f"cannot reach the server: {failure.getErrorMessage() or failure.type.__name__}"

    return run().addErrback(failed)


def publish(reactor: Any, clock: Any, identity: Identity, timeout: float = 10.0,
            agent: Any = None) -> Deferred[dict[str, str]]:
    """POST ``identity`` to all its sources at once; ``{idurl: "OK" | reason}``."""
    agent = agent if agent is not None else Agent(reactor, connectTimeout=timeout)
    body = identity.to_xml()
    posts = [post_one(agent, clock, idurl, body, timeout) for idurl in identity.sources]

    def collect(results: list[tuple[bool, Any]]) -> dict[str, str]:
        return {idurl: str(value) for idurl, (_ok, value) in zip(identity.sources, results, strict=True)}

    return DeferredList(posts, consumeErrors=True).addCallback(collect)
