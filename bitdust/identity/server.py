"""The identity server: an HTTP resource that hosts identity documents at their idurls.

Anybody may register a name, so the server is the only thing between a name and its
theft. A POST is stored only when the document proves itself:

- it parses and its signature verifies against its own key (else 400);
- one of its sources is ``http://<this host>:<this port>/<name>.xml`` for the posted
  name. Not only the first: a node registered on several servers lists them all and
  POSTs the same document to each, and each server sees itself further down the list;
- the name is free, or held by the same public key (else 403), at a revision no higher
  than the new one (else 409). An equal revision is accepted so that re-publishing
  after a lost answer is harmless.

Bodies are capped while they arrive (:class:`CappedRequest`): a client cannot make the
server buffer more than the cap in memory or on disk. Documents are written atomically
under the server folder, one file per name.
"""

from __future__ import annotations

import logging
from io import BytesIO
from pathlib import Path
from typing import Any, cast

from twisted.web import http, resource, server

from bitdust.identity.document import MAX_XML_BYTES, Identity, IdentityError
from bitdust.identity.idurl import IdurlError, make_idurl, parse_idurl, valid_name
from bitdust.util.fs import atomic_write

log = logging.getLogger(__name__)

_SUFFIX = ".xml"


class CappedRequest(server.Request):
    """A request that stops keeping its body once it passes ``max_body`` bytes."""

    max_body = MAX_XML_BYTES

    def gotLength(self, length: int | None) -> None:
        self.body_too_large = length is not None and length > self.max_body
        self.body_received = 0
        if self.body_too_large:
            self.content = BytesIO()  # no temp file for a body we will refuse anyway
        else:
            super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.body_too_large:
            return
        self.body_received += len(data)
        if self.body_received > self.max_body:
            self.body_too_large = True
            self.content = BytesIO()
            return
        super().handleContentChunk(data)


class IdentityStore:
    """Documents by name in one folder; the server's only state."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        if not valid_name(name):
            raise ValueError(f"bad name {name!r}")
        return self.folder / (name + _SUFFIX)

    def read(self, name: str) -> bytes | None:
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError:
            return None

    def load(self, name: str) -> Identity | None:
        data = self.read(name)
        return None if data is None else Identity.from_xml(data)

    def write(self, name: str, identity: Identity) -> None:
        atomic_write(self.path(name), identity.to_xml())

    def names(self) -> list[str]:
        return sorted(p.name.removesuffix(_SUFFIX) for p in self.folder.glob("*" + _SUFFIX) if valid_name(
            p.name.removesuffix(_SUFFIX)))


class Refused(Exception):
    """A POST that must not be stored: HTTP code and a message for the client."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class IdentityServerResource(resource.Resource):
    """``GET /<name>.xml``, ``POST /<name>.xml`` and ``POST /``; ``GET /`` lists idurls.

    ``host`` and ``port`` are this server's public address: the one its idurls carry.
    """

    isLeaf = True

    def __init__(self, store: IdentityStore, host: str, port: int) -> None:
        super().__init__()
        self.store = store
        self.host = host
        self.port = port

    def idurl(self, name: str) -> str:
        return make_idurl(self.host, self.port, name)

    def render(self, request: server.Request) -> bytes:
        # twisted.web answers 501 to methods it does not know (PUT, DELETE): say 405.
        if request.method not in (b"GET", b"HEAD", b"POST"):
            request.setHeader(b"allow", b"GET, HEAD, POST")
            return _text(request, 405, f"method {request.method.decode('latin-1')} is not allowed\n")
        return cast(bytes, super().render(request))

    # -- GET ---------------------------------------------------------------------

    def render_GET(self, request: server.Request) -> bytes:
        path = request.path.decode("latin-1")
        if path == "/":
            return _text(request, 200, "".join(self.idurl(name) + "\n" for name in self.store.names()))
        name = _name_from_path(path)
        data = self.store.read(name) if name else None
        if data is None:
            return _text(request, 404, f"no identity at {path}\n")
        request.setHeader(b"content-type", b"text/xml; charset=utf-8")
        return data

    # -- POST --------------------------------------------------------------------

    def render_POST(self, request: server.Request) -> bytes:
        try:
            name, identity, created = self._accept(request)
        except Refused as refused:
            log.info("identity POST %s refused (%d): %s", request.path, refused.code, refused)
            return _text(request, refused.code, str(refused) + "\n")
        log.info("identity %s %s, revision %d", self.idurl(name), "registered" if created else "updated",
                 identity.revision)
        return _text(request, 201 if created else 200, self.idurl(name) + "\n")

    def _accept(self, request: server.Request) -> tuple[str, Identity, bool]:
        if getattr(request, "body_too_large", False):
            raise Refused(413, f"identity documents are limited to {MAX_XML_BYTES} bytes")
        path = request.path.decode("latin-1")
        wanted = None if path == "/" else _name_from_path(path)
        if path != "/" and wanted is None:
            raise Refused(404, f"bad path {path}: POST to /<name>.xml or /")
        assert request.content is not None
        body = request.content.read(MAX_XML_BYTES + 1)
        if len(body) > MAX_XML_BYTES:
            raise Refused(413, f"identity documents are limited to {MAX_XML_BYTES} bytes")
        try:
            identity = Identity.from_xml(body)
        except IdentityError as exc:
            raise Refused(400, f"bad identity document: {exc}") from None
        if not identity.verify():
            raise Refused(400, "the identity's signature does not verify against its public key")
        name = self._hosted_name(identity, wanted)
        current = self._current(name)
        if current is not None:
            if current.public_key != identity.public_key:
                raise Refused(403, f"the name {name!r} is taken by another key")
            if identity.revision < current.revision:
                raise Refused(409, f"revision {identity.revision} is older than the stored revision "
                                   f"{current.revision}")
        self.store.write(name, identity)
        return name, identity, current is None

    def _hosted_name(self, identity: Identity, wanted: str | None) -> str:
        """The name of the source that points at this server (the posted one if given)."""
        for source in identity.sources:
            try:
                host, port, name = parse_idurl(source)
            except IdurlError:
                continue
            if host == self.host and port == self.port and wanted in (None, name):
                return name
        target = self.idurl(wanted) if wanted else f"http://{self.host}:{self.port}/<name>.xml"
        raise Refused(400, f"none of the identity's sources is {target}")

    def _current(self, name: str) -> Identity | None:
        try:
            return self.store.load(name)
        except IdentityError as exc:
            # A stored file we cannot read would lock the name forever; log loudly and let
            # the next valid POST replace it.
            log.error("stored identity %s is unreadable, it will be replaced: %s", name, exc)
            return None


def make_site(root: IdentityServerResource) -> server.Site:
    """A Site for the resource with bodies capped while they arrive."""
    site = server.Site(root)
    site.requestFactory = CappedRequest
    site.displayTracebacks = False
    return site


def _name_from_path(path: str) -> str | None:
    if not path.startswith("/") or not path.endswith(_SUFFIX):
        return None
    name = path[1 : -len(_SUFFIX)]
    return name if valid_name(name) else None


def _text(request: Any, code: int, message: str) -> bytes:
    request.setResponseCode(code, http.RESPONSES.get(code))
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return message.encode("utf-8")
