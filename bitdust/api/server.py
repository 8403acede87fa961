"""The JSON-RPC 2.0 server of a node, on ``127.0.0.1:<interface/api/json-rpc-port>``.

Built on txjsonrpc-ng's resource, with what a daemon holding someone's keys needs in
front of it:

- every request must carry ``Authorization: Bearer <secret>`` (``<home>/metadata/apisecret``),
  or come from the GUI page with its session cookie and CSRF header (see
  :mod:`bitdust.api.gui_access`); without either the answer is HTTP 401 and nothing runs;
- only POST; no JSONP, no CORS headers, so another web origin cannot call it;
- bodies over 1 MiB are refused (413) before parsing;
- JSON-RPC errors use the standard codes: -32700 parse error, -32600 invalid request,
  -32601 unknown method, -32602 wrong params. An exception inside a method becomes
  ``{'status': 'ERROR', 'errors': [...]}``; its traceback goes to the log only.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.python.failure import Failure
from twisted.web import http, resource, server
from txjsonrpc_ng import jsonrpclib
from txjsonrpc_ng.web.jsonrpc import JSONRPC

from bitdust.api.gui_access import CSRF_HEADER, GuiAccess
from bitdust.api.gui_web import GuiResource
from bitdust.api.methods import ApiMethods
from bitdust.api.results import error_from_exception

if TYPE_CHECKING:
    from twisted.internet.interfaces import IListeningPort

    from bitdust.node import Node

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
PARSE_ERROR = -32700
INVALID_REQUEST = jsonrpclib.INVALID_JSONRPC
INVALID_PARAMS = jsonrpclib.INVALID_METHOD_PARAMS
UNAUTHORIZED = -32001


def _error_body(code: int, message: str, request_id: Any = None) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": request_id}).encode()


def _envelope_problem(parsed: Any) -> tuple[int, str] | None:
    """Checked here so that every envelope error is answered in JSON-RPC 2.0 form
    (the base class would answer these in the pre-1.0 form). Batches are not supported."""
    if not isinstance(parsed, dict):
        return INVALID_REQUEST, "invalid request: expected one JSON object (batches are not supported)"
    if not isinstance(parsed.get("method"), str):
        return INVALID_REQUEST, "invalid request: 'method' must be a string"
    if parsed.get("params") is not None and not isinstance(parsed["params"], list | dict):
        return INVALID_PARAMS, "invalid params: expected an array or an object"
    return None


class JsonRpcResource(JSONRPC):
    """Dispatches to :class:`ApiMethods`; checks the secret, the verb and the body first."""

    def __init__(self, methods: ApiMethods, secret: str, access: GuiAccess | None = None) -> None:
        super().__init__()
        self._methods = methods
        self._secret = secret.encode("ascii")
        self._access = access

    def render(self, request: server.Request) -> Any:
        if not self._authorized(request):
            request.setResponseCode(401)
            request.setHeader(b"www-authenticate", b'Bearer realm="bitdust"')
            request.setHeader(b"content-type", b"application/json")
            log.warning("API: refused a request without a valid secret from %s", request.getClientAddress())
            return _error_body(UNAUTHORIZED, "unauthorized: send Authorization: Bearer <apisecret>")
        if request.method != b"POST":
            request.setResponseCode(405)
            request.setHeader(b"allow", b"POST")
            request.setHeader(b"content-type", b"application/json")
            return _error_body(INVALID_REQUEST, "use POST for JSON-RPC calls")
        content = request.content
        if content is None:
            request.setResponseCode(400)
            return _error_body(INVALID_REQUEST, "empty request")
        content.seek(0, 2)
        size = content.tell()
        content.seek(0, 0)
        if size > MAX_BODY:
            request.setResponseCode(413)
            request.setHeader(b"content-type", b"application/json")
            return _error_body(INVALID_REQUEST, f"request body over {MAX_BODY} bytes")
        try:
            parsed = json.loads(content.read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            request.setHeader(b"content-type", b"application/json")
            return _error_body(PARSE_ERROR, f"parse error: {exc}")
        problem = _envelope_problem(parsed)
        if problem is not None:
            request.setHeader(b"content-type", b"application/json")
            request_id = parsed.get("id") if isinstance(parsed, dict) else None
            return _error_body(*problem, request_id=request_id)
        content.seek(0, 0)
        return super().render(request)

    def _authorized(self, request: server.Request) -> bool:
        header = request.getHeader(b"authorization") or b""
        scheme, _, token = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self._secret):
            return True
        access = self._access
        return access is not None and access.allows_call(
            request.getCookie(access.cookie_name), request.getHeader(CSRF_HEADER),
            request.getHeader(b"origin"), request.getHeader(b"host"))

    def _getFunction(self, functionPath: str) -> Callable[..., Any]:
        method = self._methods.lookup(functionPath)
        if method is None:
            raise jsonrpclib.NoSuchFunction(jsonrpclib.METHOD_NOT_FOUND, f"method {functionPath!r} not found")
        signature = self._methods.signature(functionPath)

        def call(*args: Any, **kwargs: Any) -> Deferred[Any]:
            try:
                signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise jsonrpclib.Fault(jsonrpclib.INVALID_METHOD_PARAMS, f"invalid params: {exc}") from None
            return maybeDeferred(method, *args, **kwargs).addErrback(self._method_failed, functionPath)

        return call

    def _method_failed(self, failure: Failure, name: str) -> dict[str, Any]:
        if failure.check(jsonrpclib.Fault):
            failure.raiseException()
        return error_from_exception(name, failure)


class ApiRoot(resource.Resource):
    """``/`` and ``/json`` answer JSON-RPC; ``/gui/`` is the browser GUI."""

    def __init__(self, rpc: JsonRpcResource, gui: GuiResource | None = None) -> None:
        super().__init__()
        self._rpc = rpc
        self._gui = gui

    def getChild(self, path: bytes, request: server.Request) -> resource.Resource:
        if path in (b"", b"json"):
            return self._rpc
        if path == b"gui" and self._gui is not None:
            return self._gui
        return resource.NoResource()

    def render(self, request: server.Request) -> Any:
        return self._rpc.render(request)


class ApiRequest(server.Request):
    """A request that skips Twisted's form-body parsing.

    Twisted parses every Content-Type header with the ``email`` package to look for form
    bodies; that was about a fifth of the server's time per call. The API never takes
    forms (bodies are JSON), so the header is dropped before that step.
    """

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        self.requestHeaders.removeHeader(b"content-type")
        super().requestReceived(command, path, version)


class QuietSite(server.Site):
    """A Site without per-request access logging (the API is called very often)."""

    requestFactory = ApiRequest

    def log(self, request: http.Request) -> None:
        return None


class ApiServer:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.access = GuiAccess(lambda: self.port)
        self.methods = ApiMethods(node, self.access)
        secret = node.home.api_secret(create=True)
        assert secret is not None
        rpc = JsonRpcResource(self.methods, secret, self.access)
        self.site = QuietSite(ApiRoot(rpc, GuiResource(self.access)))
        self._listening: IListeningPort | None = None

    def start(self) -> Deferred[None]:
        host = self.node.config.get("interface/api/host")
        port = self.node.config.get("interface/api/json-rpc-port")
        self._listening = self.node.reactor.listenTCP(port, self.site, interface=host)
        log.info("JSON-RPC API on http://%s:%d/, GUI on http://%s:%d/gui/", host, self.port, host, self.port)
        self.methods.show_after_restart()
        return succeed(None)

    @property
    def port(self) -> int:
        if self._listening is None:
            raise RuntimeError("the API is not listening")
        address = self._listening.getHost()
        assert isinstance(address, IPv4Address | IPv6Address)
        return int(address.port)

    def stop(self) -> Deferred[None]:
        listening, self._listening = self._listening, None
        if listening is None:
            return succeed(None)
        stopped = listening.stopListening()
        return stopped if isinstance(stopped, Deferred) else succeed(None)
