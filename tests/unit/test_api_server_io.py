"""The API server's fast paths must answer exactly like the slow ones they replace.

- :class:`ParamCheck` decides "params fit" without ``inspect.Signature.bind``: it must
  agree with ``bind`` on every call, and give ``bind``'s message when they do not fit;
- :class:`EagerSendConnection` sends on write instead of on the next loop pass: bytes
  the kernel does not take at once must still arrive whole and in order;
- :class:`ReadyPipe` tells ``bitdust start`` once, and never leaks its descriptor;
- ``JsonRpcResource._dispatch`` (our render from the parsed request) answers every kind
  of call and result byte for byte like txjsonrpc-ng's ``JSONRPC.render`` did.
"""

from __future__ import annotations

import inspect
import io
import itertools
import json
import os
from collections.abc import Callable
from typing import Any, cast

import pytest
import pytest_twisted
from twisted.internet import protocol, reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.test.requesthelper import DummyRequest
from txjsonrpc_ng import jsonrpclib
from txjsonrpc_ng.web.jsonrpc import JSONRPC

from bitdust.api.methods import ApiMethods
from bitdust.api.server import EagerSendConnection, EagerSendPort, JsonRpcResource, ParamCheck
from bitdust.daemon import READY_FD_ENV, ReadyPipe


def no_params() -> None: ...
def one_optional(a: int, b: int = 1) -> None: ...
def only_varargs(*args: int) -> None: ...
def keyword_only(a: int, *, k: int) -> None: ...
def keyword_only_default(a: int, *, k: int = 2) -> None: ...
def everything(a: int, /, b: int, *args: int, c: int = 3, **kwargs: int) -> None: ...


@pytest.mark.parametrize("function", [no_params, one_optional, only_varargs, keyword_only,
                                      keyword_only_default, everything])
def test_param_check_agrees_with_bind(function: Callable[..., None]) -> None:
    signature = inspect.signature(function)
    check = ParamCheck(signature)
    keyword_sets: list[dict[str, Any]] = [{}, {"a": 1}, {"b": 2}, {"k": 3}, {"c": 4}, {"zz": 5}, {"a": 1, "k": 2}]
    for count, kwargs in itertools.product(range(5), keyword_sets):
        args = tuple(range(count))
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            with pytest.raises(jsonrpclib.Fault) as refused:
                check(args, kwargs)
            assert refused.value.faultCode == jsonrpclib.INVALID_METHOD_PARAMS
            assert refused.value.faultString == f"invalid params: {exc}"
        else:
            check(args, kwargs)


class Sender(protocol.Protocol):
    """Writes a payload far larger than the socket buffers, then more behind it."""

    def connectionMade(self) -> None:
        transport = self.transport
        assert isinstance(transport, EagerSendConnection)
        transport.write(BIG)
        transport.writeSequence([b"tail-1:", b"tail-2"])
        with transport.coalesced():
            transport.write(b"|coalesced-1")
            transport.write(b"|coalesced-2")
        transport.loseConnection()


class Collector(protocol.Protocol):
    def __init__(self, done: Deferred[bytes]) -> None:
        self.done = done
        self.chunks: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.done.callback(b"".join(self.chunks))


BIG = bytes(range(256)) * (64 * 1024)  # 16 MiB: the kernel takes only part of it per send


@pytest_twisted.inlineCallbacks
def test_eager_send_keeps_every_byte_in_order() -> Any:
    factory = protocol.Factory.forProtocol(Sender)
    port = EagerSendPort(0, factory, interface="127.0.0.1", reactor=reactor)
    port.startListening()
    try:
        done: Deferred[bytes] = Deferred()
        yield protocol.ClientCreator(reactor, Collector, done).connectTCP("127.0.0.1", port.getHost().port)
        received = yield done
        assert received == BIG + b"tail-1:tail-2|coalesced-1|coalesced-2"
    finally:
        yield port.stopListening()


def test_ready_pipe_tells_once_and_closes() -> None:
    read_fd, write_fd = os.pipe()
    try:
        environ = {READY_FD_ENV: str(write_fd)}
        pipe = ReadyPipe(environ)
        assert READY_FD_ENV not in environ, "a restarted daemon (execv) must not find it"
        assert not os.get_inheritable(write_fd)
        pipe.send("ready", "http://127.0.0.1:8083/")
        pipe.send("failed", "never sent: the pipe is closed after the first line")
        with pytest.raises(OSError):
            os.fstat(write_fd)
        assert os.read(read_fd, 4096) == b"ready http://127.0.0.1:8083/\n"
        assert os.read(read_fd, 4096) == b"", "end of file: the write end is closed"
    finally:
        os.close(read_fd)


def test_ready_pipe_ignores_a_bad_descriptor() -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    os.close(write_fd)
    for text in ("not-a-number", str(write_fd)):
        pipe = ReadyPipe({READY_FD_ENV: text})
        pipe.send("ready", "nothing happens")
    ReadyPipe({}).send("ready", "no variable, nothing happens")


# -- _dispatch answers exactly what txjsonrpc-ng's own render answered ------------------------


async def _coroutine_method() -> dict[str, Any]:
    return {"status": "OK", "result": "from a coroutine"}


class MethodTable:
    """What JsonRpcResource needs of ApiMethods, with one method per kind of result."""

    def __init__(self) -> None:
        self.pending: list[Deferred[Any]] = []
        self._table: dict[str, Callable[..., Any]] = {
            "value": lambda x, y=2: {"status": "OK", "result": [x, y]},
            "raises": self._raises,
            "returns_failure": lambda: Failure(RuntimeError("returned, not raised")),
            "coroutine": _coroutine_method,
            "later": self._later,
            "fault": self._fault,
            "nothing": lambda: None,
        }

    @staticmethod
    def _raises() -> None:
        raise RuntimeError("inside the method")

    @staticmethod
    def _fault() -> None:
        raise jsonrpclib.Fault(4242, "a method's own JSON-RPC fault")

    def _later(self) -> Deferred[Any]:
        waiting: Deferred[Any] = Deferred()
        self.pending.append(waiting)
        return waiting

    def lookup(self, name: str) -> Callable[..., Any] | None:
        return self._table.get(name)

    def signature(self, name: str) -> inspect.Signature:
        return inspect.signature(self._table[name])


class TxjsonrpcReference(JsonRpcResource):
    """The previous server: our checks, then txjsonrpc-ng's ``JSONRPC.render`` with each
    call wrapped in ``maybeDeferred`` after ``Signature.bind``."""

    def _dispatch(self, request: Any, parsed: dict[str, Any]) -> Any:
        request.content.seek(0, 0)
        return JSONRPC.render(self, request)

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


REQUESTS: list[dict[str, Any]] = [
    {"jsonrpc": "2.0", "id": 1, "method": "value", "params": [1]},
    {"jsonrpc": "2.0", "id": 2, "method": "value", "params": {"x": 1, "y": 3}},
    {"jsonrpc": "2.0", "id": 3, "method": "value", "params": [1, 2, 3]},
    {"jsonrpc": "2.0", "id": 4, "method": "value", "params": {"z": 1}},
    {"jsonrpc": "2.0", "id": 5, "method": "value"},
    {"jsonrpc": "2.0", "id": 6, "method": "no_such_method", "params": []},
    {"jsonrpc": "2.0", "id": 7, "method": "raises", "params": []},
    {"jsonrpc": "2.0", "id": 8, "method": "returns_failure", "params": []},
    {"jsonrpc": "2.0", "id": 9, "method": "coroutine", "params": []},
    {"jsonrpc": "2.0", "id": 10, "method": "fault", "params": []},
    {"jsonrpc": "2.0", "id": 11, "method": "nothing", "params": []},
    {"jsonrpc": "abc", "id": 12, "method": "value", "params": [1]},
    {"id": 13, "method": "value", "params": [1]},
    {"method": "value", "params": [1]},
    {"jsonrpc": "1.0", "id": 0, "method": "raises"},
    {"jsonrpc": "2.0", "id": 14, "method": "later", "params": [], "then": "ok"},
    {"jsonrpc": "2.0", "id": 15, "method": "later", "params": [], "then": "fail"},
    {"jsonrpc": "2.0", "id": 16, "method": "later", "params": [], "then": "fault"},
]


def _answer(resource: JsonRpcResource, table: MethodTable, payload: dict[str, Any]) -> tuple[bytes, Any, int]:
    request: Any = DummyRequest([b""])
    request.method = b"POST"
    request.content = io.BytesIO(json.dumps(payload).encode())
    request.requestHeaders.setRawHeaders(b"authorization", [b"Bearer " + SECRET.encode()])
    body = resource.render(request)
    assert body is server.NOT_DONE_YET
    then = payload.get("then")
    if then is not None:
        waiting = table.pending.pop()
        if then == "ok":
            waiting.callback({"status": "OK", "result": "later"})
        elif then == "fail":
            waiting.errback(RuntimeError("failed later"))
        else:
            waiting.errback(jsonrpclib.Fault(4343, "a fault later"))
    return b"".join(request.written), request.responseHeaders.getRawHeaders(b"content-type"), request.finished


SECRET = "s" * 32


def test_dispatch_answers_like_txjsonrpc_render() -> None:
    ours_table, reference_table = MethodTable(), MethodTable()
    ours = JsonRpcResource(cast(ApiMethods, ours_table), SECRET)
    reference = TxjsonrpcReference(cast(ApiMethods, reference_table), SECRET)
    for payload in REQUESTS:
        ours_answer = _answer(ours, ours_table, payload)
        assert ours_answer == _answer(reference, reference_table, payload), payload
        assert ours_answer[2] == 1, "finished once"
