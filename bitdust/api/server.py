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
import inspect
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from twisted.internet import tcp
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.posixbase import PosixReactorBase
from twisted.python.failure import Failure
from twisted.web import http, resource, server
from txjsonrpc_ng import jsonrpclib
from txjsonrpc_ng.web.jsonrpc import JSONRPC, Handler

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


class ParamCheck:
    """Do ``args``/``kwargs`` fit a method's signature? ``inspect.Signature.bind`` answers,
    but costs about as much as a whole ``config_get``; the usual case (positional params
    only, a count within range) is answered from counts made once. Anything else goes to
    ``bind``, so its error message is the one the client gets."""

    def __init__(self, signature: inspect.Signature) -> None:
        self._signature = signature
        kinds = [param.kind for param in signature.parameters.values()]
        positional = [param for param in signature.parameters.values()
                      if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)]
        self._most = len(positional) if inspect.Parameter.VAR_POSITIONAL not in kinds else None
        self._least = sum(1 for param in positional if param.default is param.empty)
        self._fast = not any(param.kind is param.KEYWORD_ONLY and param.default is param.empty
                             for param in signature.parameters.values())

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self._fast and not kwargs and self._least <= len(args) and (self._most is None or len(args) <= self._most):
            return
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise jsonrpclib.Fault(jsonrpclib.INVALID_METHOD_PARAMS, f"invalid params: {exc}") from None


class JsonRpcResource(JSONRPC):
    """Dispatches to :class:`ApiMethods`; checks the secret, the verb and the body first."""

    def __init__(self, methods: ApiMethods, secret: str, access: GuiAccess | None = None) -> None:
        super().__init__()
        self._methods = methods
        self._secret = secret.encode("ascii")
        self._access = access
        self._param_checks: dict[str, ParamCheck] = {}

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
        return self._dispatch(request, parsed)

    def _dispatch(self, request: server.Request, parsed: dict[str, Any]) -> Any:
        """txjsonrpc-ng's ``JSONRPC.render`` from the already parsed request (it would read
        and parse the body again), same steps and answers, through its own ``_getFunction``,
        ``_ebRender`` and ``_cbRender``; but a method that answers at once (nearly every
        call) is rendered at once, without the two Deferreds and the finish notifier the
        base class wraps around every call (``bench/api.py``)."""
        request.setHeader(b"content-type", b"application/json")
        request_id = parsed.get("id")
        version = jsonrpclib.VERSION_PRE1
        try:
            version = self._select_version(parsed, request_id)
            params = parsed.get("params")
            args: list[Any] = params if isinstance(params, list) else []
            kwargs: dict[str, Any] = params if isinstance(params, dict) else {}
            call = self._getFunction(parsed["method"])
        except jsonrpclib.Fault as fault:
            return self._finish(request, fault, request_id, version)
        except (ValueError, TypeError) as exc:
            return self._finish(request, jsonrpclib.Fault(INVALID_REQUEST, str(exc)), request_id, version)
        try:
            result = call(*args, **kwargs)
        except jsonrpclib.Fault as fault:
            return self._finish(request, fault, request_id, version)
        except Exception:
            return self._finish(request, self._ebRender(Failure(), request_id), request_id, version)
        if not isinstance(result, Deferred):
            return self._finish(request, result, request_id, version)

        def response_failed(_reason: Failure) -> None:
            result.cancel()

        request.notifyFinish().addErrback(response_failed)
        result.addErrback(self._ebRender, request_id)
        result.addCallback(self._cbRender, request, request_id, version)
        return server.NOT_DONE_YET

    def _finish(self, request: server.Request, result: Any, request_id: Any, version: int) -> Any:
        self._cbRender(result, request, request_id, version)
        return server.NOT_DONE_YET

    def _cbRender(self, result: Any, request: server.Request, id: Any, version: int) -> Any:
        """txjsonrpc-ng's, without its per-answer renderer objects and gzip: the API
        answers on loopback, where compressing costs CPU and saves no time."""
        if isinstance(result, Handler):
            result = result.result
        if result is not None:
            body = self._render_text(result, id, version, request).encode()
            request.setHeader(b"content-length", b"%d" % len(body))
            request.write(body)
        request.finish()
        return result

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
        """The method as a callable that checks the params first (-32602 if they do not
        fit), and turns an exception inside the method into ``status: ERROR``. It returns
        the method's own result: a value, or a Deferred for the slow calls."""
        method = self._methods.lookup(functionPath)
        if method is None:
            raise jsonrpclib.NoSuchFunction(jsonrpclib.METHOD_NOT_FOUND, f"method {functionPath!r} not found")
        check = self._param_checks.get(functionPath)
        if check is None:
            check = self._param_checks[functionPath] = ParamCheck(self._methods.signature(functionPath))

        def call(*args: Any, **kwargs: Any) -> Any:
            check(args, kwargs)
            try:
                result = method(*args, **kwargs)
            except jsonrpclib.Fault:
                raise
            except Exception:
                return error_from_exception(functionPath, Failure())
            # what maybeDeferred would do with the other kinds of result
            if isinstance(result, Failure):
                return self._method_failed(result, functionPath)
            if isinstance(result, CoroutineType):
                result = Deferred.fromCoroutine(result)
            if isinstance(result, Deferred):
                return result.addErrback(self._method_failed, functionPath)
            return result

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

    def write(self, data: bytes) -> None:
        """The first write sends the headers too: one send for both (see EagerSendConnection)."""
        transport = self.channel.transport if self.channel is not None else None
        if self.startedWriting or not isinstance(transport, EagerSendConnection):
            super().write(data)
            return
        with transport.coalesced():
            super().write(data)


class EagerSendConnection(tcp.Server):
    """A connection of the API port that sends a response at once.

    Twisted's TCP transport queues every write and sends it on a later pass of the loop,
    when the socket reports writable: per answer, the connection is added to and removed
    from the writers (two epoll changes) and waits one more loop pass, behind the other
    clients' requests. Here an answer is sent by the write itself whenever nothing is
    queued before it (the normal case: the kernel's buffer takes a JSON answer whole);
    what the socket does not take now is queued the usual way, in order.
    """

    _batch: list[bytes] | None = None

    @contextmanager
    def coalesced(self) -> Iterator[None]:
        """Writes made inside go out as one send at the end: Twisted writes a response's
        headers and its body separately, and two small segments would cost the client a
        second wake-up (or, with Nagle's algorithm, wait for the first one's ACK)."""
        self._batch = []
        try:
            yield
        finally:
            batch, self._batch = self._batch, None
            if batch:
                self.write(b"".join(batch))

    def write(self, data: bytes) -> None:
        if not isinstance(data, bytes):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        if self._batch is not None:
            self._batch.append(data)
            return
        if data and self._nothing_queued():
            sent = self.writeSomeData(data)
            if isinstance(sent, int):  # else the connection is lost: the queued path reports it
                if sent == len(data):
                    return
                data = data[sent:]
        super().write(data)

    def writeSequence(self, iovec: Iterable[bytes]) -> None:
        self.write(b"".join(iovec))

    def _nothing_queued(self) -> bool:
        return bool(self.connected and not self.disconnecting and not self._writeDisconnected
                    and not getattr(self, "TLS", False)
                    and len(self.dataBuffer) == self.offset and not self._tempDataLen)


class EagerSendPort(tcp.Port):
    transport = EagerSendConnection


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
        reactor = self.node.reactor
        if isinstance(reactor, PosixReactorBase):
            listening = EagerSendPort(port, self.site, interface=host, reactor=reactor)
            listening.startListening()
            self._listening = listening
        else:  # a test's fake reactor
            self._listening = reactor.listenTCP(port, self.site, interface=host)
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
