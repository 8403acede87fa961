"""DataMotion, its throttle, the file lister and list_files_orator with a fake wire and
task.Clock: no network, every answer given by the test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from bitdust.automats.automat import check_table
from bitdust.storage import market
from bitdust.storage.motion import DataMotion, MotionBusy, NoSupplier, PieceRefused, PieceTimeout
from bitdust.storage.motion.listing import FileLister
from bitdust.storage.motion.orator import ASKING, READY, ListFilesOrator
from bitdust.storage.motion.throttle import Throttle
from bitdust.transport.fail import FailReason
from bitdust.transport.outbox import GatewayTimeout
from bitdust.transport.packet import Command, Payload

ME = "http://127.0.0.1:1/me.xml"
PIECE = "0/1/F20240101120000PM/0-1-Data"


def sup(n: int) -> str:
    return f"http://127.0.0.1:1/s{n}.xml"


@dataclass
class FakePacket:
    command: Command
    packet_id: str
    payload: bytes
    owner_id: str
    creator_id: str


@dataclass
class Sent:
    packet: FakePacket
    remote: str
    deferred: Deferred[Any]
    timer: Any


class FakeWire:
    """sign_packet at once; outbox waits for the test's answer or times out on the clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent: list[Sent] = []
        self.handlers: dict[Command, list[Callable[[Any], Any]]] = {}
        self._n = 0

    def sign_packet(self, command: Command | str, payload: Payload, remote_idurl: str,
                    packet_id: str | None = None) -> Deferred[Any]:
        payload = b"".join(payload) if isinstance(payload, list) else bytes(payload)  # as Packet.create does
        self._n += 1
        return succeed(FakePacket(Command(command), packet_id or f"p{self._n}", payload, ME, ME))

    def outbox(self, packet: Any, remote_idurl: str | None = None, wait_ack: bool = True,
               timeout: float = 10.0, retries: int = 2) -> Deferred[Any]:
        entry: Sent

        def cancel(_d: Deferred[Any]) -> None:
            if entry.timer.active():
                entry.timer.cancel()

        result: Deferred[Any] = Deferred(cancel)

        def expire() -> None:
            if not result.called:
                result.errback(GatewayTimeout("no reply"))

        entry = Sent(packet, remote_idurl or "", result, self.clock.callLater(timeout * (retries + 1), expire))
        self.sent.append(entry)
        return result

    def add_handler(self, command: Command | str, callback: Callable[[Any], Any]) -> None:
        self.handlers.setdefault(Command(command), []).append(callback)

    def remove_handler(self, command: Command | str, callback: Callable[[Any], Any]) -> None:
        self.handlers[Command(command)].remove(callback)

    def answer(self, index: int, command: Command, payload: bytes = b"") -> None:
        entry = self.sent[index]
        entry.timer.cancel()
        entry.deferred.callback(FakePacket(command, entry.packet.packet_id, payload, entry.remote, entry.remote))

    def deliver(self, command: Command, packet: FakePacket) -> None:
        for handler in list(self.handlers.get(command, [])):
            handler(packet)


def make_motion(clock: Clock, total: int = 4, per: int = 2) -> tuple[DataMotion, FakeWire]:
    wire = FakeWire(clock)
    suppliers = {0: sup(0), 1: sup(1), 2: sup(2)}
    motion = DataMotion(wire, suppliers.get, lambda idurl: idurl == ME, lambda: total, lambda: per, lambda: 5.0)
    motion.start()
    return motion, wire


def results(deferred: Deferred[Any]) -> list[Any]:
    out: list[Any] = []
    deferred.addBoth(out.append)
    return out


def piece(block: int, supplier: int) -> str:
    return f"0/1/F20240101120000PM/{block}-{supplier}-Data"


def test_send_ack_fires_none_and_fail_is_refused() -> None:
    motion, wire = make_motion(Clock())
    ok, refused = results(motion.send_piece(0, piece(0, 0), b"x")), results(motion.send_piece(1, piece(0, 1), b"y"))
    assert [s.packet.command for s in wire.sent] == [Command.Data, Command.Data]
    assert market.decode_piece(wire.sent[0].packet.payload)[0] == piece(0, 0)
    wire.answer(0, Command.Ack)
    wire.answer(1, Command.Fail, FailReason("over-quota", "full").encode())
    assert ok == [None]
    assert isinstance(refused[0], Failure) and refused[0].check(PieceRefused)
    assert refused[0].value.code == "over-quota"


def test_pieces_for_one_supplier_go_in_one_packet_and_one_ack_answers_them() -> None:
    motion, wire = make_motion(Clock())
    parity = piece(0, 0).replace("Data", "Parity")
    done = results(motion.send_pieces(0, [(piece(0, 0), b"data"), (parity, memoryview(b"parity"))]))
    assert len(wire.sent) == 1 and wire.sent[0].remote == sup(0)
    assert [(p, bytes(d)) for p, d in market.decode_pieces(wire.sent[0].packet.payload)] == [
        (piece(0, 0), b"data"), (parity, b"parity")]
    wire.answer(0, Command.Ack)
    assert done == [None]
    for bad in ([], [(piece(0, 0), b"a"), (piece(0, 0), b"b")]):
        refused = results(motion.send_pieces(0, bad))
        assert isinstance(refused[0], Failure) and refused[0].check(market.ProtocolError)
    assert len(wire.sent) == 1


def test_send_timeout_and_no_supplier() -> None:
    clock = Clock()
    motion, _wire = make_motion(clock)
    late = results(motion.send_piece(0, piece(0, 0), b"x"))
    clock.advance(16)
    assert late[0].check(PieceTimeout)
    nobody = results(motion.send_piece(3, piece(0, 3), b"x"))
    assert nobody[0].check(NoSupplier)
    bad = results(motion.send_piece(0, "../etc/passwd", b"x"))
    assert isinstance(bad[0], Failure)


def test_pieces_queued_behind_a_timed_out_one_fail_at_once() -> None:
    """A supplier gone silent: one round of timeouts, not one per queued piece; a piece
    asked for afterwards is sent again (the supplier may be back)."""
    clock = Clock()
    motion, wire = make_motion(clock, total=4, per=1)
    first = results(motion.send_piece(0, piece(0, 0), b"x"))
    queued = [results(motion.send_piece(0, piece(b, 0), b"x")) for b in (1, 2)]
    other = results(motion.send_piece(1, piece(0, 1), b"y"))
    assert [s.remote for s in wire.sent] == [sup(0), sup(1)]
    clock.advance(16)  # supplier 0 never answered
    assert first[0].check(PieceTimeout)
    assert all(out and out[0].check(PieceTimeout) and "earlier piece" in out[0].getErrorMessage()
               for out in queued)
    assert [s.remote for s in wire.sent] == [sup(0), sup(1)], "the queued pieces were not sent"
    assert other[0].check(PieceTimeout), "supplier 1 is silent too (the same clock)"
    later = results(motion.send_piece(0, piece(3, 0), b"x"))
    assert [s.remote for s in wire.sent][2:] == [sup(0)]
    wire.answer(2, Command.Ack)
    assert later == [None] and motion.sends.in_flight == 0


def test_sends_are_bounded_overall_and_per_supplier() -> None:
    motion, wire = make_motion(Clock(), total=3, per=2)
    outs = [results(motion.send_piece(0, piece(b, 0), b"x")) for b in range(3)]
    outs.append(results(motion.send_piece(1, piece(0, 1), b"x")))
    outs.append(results(motion.send_piece(2, piece(0, 2), b"x")))
    # supplier 0 may have 2; the third waits, and does not block suppliers 1 (total cap 3)
    assert [s.remote for s in wire.sent] == [sup(0), sup(0), sup(1)]
    assert motion.sends.in_flight == 3 and motion.sends.waiting == 2
    wire.answer(0, Command.Ack)
    assert [s.remote for s in wire.sent][3:] == [sup(0)]  # FIFO: the oldest waiter first
    wire.answer(2, Command.Ack)
    assert [s.remote for s in wire.sent][4:] == [sup(2)]
    for index in (1, 3, 4):
        wire.answer(index, Command.Ack)
    assert all(out == [None] for out in outs)
    assert motion.sends.in_flight == 0 and motion.sends.waiting == 0


def test_work_that_ends_at_once_frees_the_queue_behind_it() -> None:
    """Admitted work that fails synchronously releases its slot inside the wake-up of
    the queue; every waiter must still be admitted exactly once, in order."""
    throttle = Throttle(lambda: 1, lambda: 1, max_waiting=10)
    holding: Deferred[Any] = Deferred()
    throttle.run("a", lambda: holding)
    order: list[int] = []

    def quick(n: int) -> Callable[[], Deferred[Any]]:
        def work() -> Deferred[Any]:
            order.append(n)
            return fail(RuntimeError(f"piece {n} failed before it was sent"))
        return work

    ends = [results(throttle.run("a", quick(n))) for n in range(4)]
    assert throttle.waiting == 4
    holding.callback(None)
    assert order == [0, 1, 2, 3] and all(end[0].check(RuntimeError) for end in ends)
    assert throttle.in_flight == 0 and throttle.waiting == 0


def test_waiting_queue_is_bounded() -> None:
    throttle = Throttle(lambda: 1, lambda: 1, max_waiting=2)
    first = results(throttle.acquire("a"))
    queued = [throttle.acquire("a"), throttle.acquire("a")]
    with pytest.raises(MotionBusy):
        throttle.acquire("a")
    queued[0].cancel()  # a cancelled waiter leaves the queue
    assert throttle.waiting == 1
    first[0].release()
    assert throttle.in_flight == 1 and throttle.waiting == 0


def data_answer(sent: Sent, piece_id: str, data: bytes, owner: str = ME) -> FakePacket:
    return FakePacket(Command.Data, sent.packet.packet_id, market.encode_piece(piece_id, data), owner, sent.remote)


def test_retrieve_resolved_by_data_with_same_packet_id() -> None:
    motion, wire = make_motion(Clock())
    got = results(motion.retrieve_piece(1, PIECE))
    sent = wire.sent[0]
    assert sent.packet.command is Command.Retrieve and sent.remote == sup(1)
    # a customer's upload to our supplier side (owner == creator) is not an answer
    wire.deliver(Command.Data, FakePacket(Command.Data, sent.packet.packet_id, b"", sup(1), sup(1)))
    assert got == []
    wire.deliver(Command.Data, data_answer(sent, PIECE, b"payload"))
    assert got == [b"payload"]
    assert sent.deferred.called  # the Retrieve's own send was cancelled
    assert motion.retrieves.in_flight == 0


def test_retrieve_refusals_foreign_pieces_and_timeouts() -> None:
    clock = Clock()
    motion, wire = make_motion(clock)
    missing = results(motion.retrieve_from(sup(2), PIECE))
    wire.answer(0, Command.Fail, FailReason("not-found", "no such piece").encode())
    assert missing[0].check(PieceRefused) and missing[0].value.code == "not-found"
    foreign = results(motion.retrieve_piece(0, PIECE))
    wire.deliver(Command.Data, data_answer(wire.sent[1], piece(5, 0), b"other"))
    assert foreign[0].check(PieceRefused)
    silent = results(motion.retrieve_piece(0, PIECE, timeout=4.0))
    clock.advance(3.9)
    assert silent == []
    clock.advance(0.2)
    assert silent[0].check(PieceTimeout)
    stray = data_answer(wire.sent[2], PIECE, b"late")
    wire.deliver(Command.Data, stray)  # too late: ignored, no error
    assert motion.retrieves.in_flight == 0


def test_close_fails_waiting_retrieves_and_deletes_chunk() -> None:
    motion, _wire = make_motion(Clock())
    waiting = results(motion.retrieve_piece(0, PIECE))
    motion.close()
    assert isinstance(waiting[0], Failure) and not waiting[0].check(CancelledError)
    motion2, wire2 = make_motion(Clock())
    many = [piece(b, 1) for b in range(450)]
    done = results(motion2.delete_pieces(1, many))
    wire2.answer(0, Command.Ack)
    wire2.answer(1, Command.Ack)
    assert done == [None]
    assert [len(market.decode_delete_pieces(s.packet.payload)) for s in wire2.sent] == [400, 50]
    gone = results(motion2.delete_backups(2, ["0/1/F20240101120000PM"]))
    assert market.decode_delete_backups(wire2.sent[2].packet.payload) == ["0/1/F20240101120000PM"]
    wire2.answer(2, Command.Ack)
    assert gone == [None]


def test_file_lister_ignores_answers_to_other_questions() -> None:
    wire = FakeWire(Clock())
    lister = FileLister(wire, lambda: 1.0)
    lister.start()
    got = results(lister.list_files(sup(0)))
    sent = wire.sent[0]
    wire.deliver(Command.Files, FakePacket(Command.Files, "other", market.encode_file_list({}), sup(0), sup(0)))
    assert got == []
    wire.deliver(Command.Files, FakePacket(Command.Files, sent.packet.packet_id,
                                           market.encode_file_list({PIECE: 7}), sup(0), sup(0)))
    assert got == [{PIECE: 7}]


def test_orator_rounds_coalesce_and_keep_listings_per_idurl() -> None:
    assert check_table(ListFilesOrator) == []
    asked: list[tuple[str, Deferred[dict[str, int]]]] = []

    def lister(idurl: str) -> Deferred[dict[str, int]]:
        d: Deferred[dict[str, int]] = Deferred()
        asked.append((idurl, d))
        return d

    holders = {0: sup(0), 1: sup(1)}
    orator = ListFilesOrator(Clock(), None, lister, holders.get, lambda: 2)
    orator.event("init")
    first = results(orator.refresh())
    assert orator.state == ASKING and [a[0] for a in asked] == [sup(0), sup(1)]
    second = results(orator.refresh([1]))
    third = results(orator.refresh([1]))
    asked[0][1].callback({PIECE: 3})
    asked[1][1].errback(PieceTimeout("silent"))
    assert first == [None] and second == [] and len(asked) == 3  # one more round, for both waiters
    asked[2][1].callback({})
    assert second == [None] and third == [None] and orator.state == READY
    assert orator.held(0) == {PIECE: 3} and orator.held(1) == {}
    holders[0] = sup(9)  # replaced: the old listing is not the new supplier's
    assert orator.held(0) is None
