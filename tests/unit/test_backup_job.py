"""The backup machine with a fake JobIO: the window, completion only after every Ack,
failure and abort cleanups, and the table itself."""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from bitdust.automats.automat import check_table, to_dot
from bitdust.storage.backups.job import ABORTED, DONE, FAILED, RUNNING, SAVING, WINDOW, BackupJob, Opened
from bitdust.storage.ecc import EccMap
from bitdust.storage.pipeline.encoder import EncodedBlock

BACKUP = "0/F20240101120000PM"


class FakeIO:
    def __init__(self, blocks: int) -> None:
        self.total = blocks
        self.calls: list[str] = []
        self.encodes: list[Deferred[EncodedBlock | None]] = []
        self.sends: dict[str, Deferred[None]] = {}
        self.packets: list[tuple[int, list[str]]] = []
        self.next = 0
        self.suppliers_wait: Deferred[None] | None = None  # None: every supplier is connected

    def wait_suppliers(self) -> Deferred[None]:
        self.calls.append("wait")
        if self.suppliers_wait is not None:
            return self.suppliers_wait
        return succeed(None)

    def open(self, path_id: str, backup_id: str) -> Deferred[Opened]:
        self.calls.append("open")
        return succeed(Opened(EccMap(2), 1024, 4096))

    def next_block(self) -> Deferred[EncodedBlock | None]:
        d: Deferred[EncodedBlock | None] = Deferred()
        self.encodes.append(d)
        return d

    def produce(self) -> None:
        """Answer the oldest open next_block call."""
        d = next(e for e in self.encodes if not e.called)
        if self.next >= self.total:
            d.callback(None)
            return
        n = self.next
        self.next += 1
        d.callback(EncodedBlock(n, n == self.total - 1, [bytes([n, i]) for i in range(4)], 10, 10))

    def bytes_read(self) -> int:
        return 100 * self.next

    def send(self, position: int, pieces: list[tuple[str, bytes | memoryview]]) -> Deferred[None]:
        """One Deferred per packet, found under each of its pieces' IDs."""
        d: Deferred[None] = Deferred()
        self.packets.append((position, [piece_id for piece_id, _data in pieces]))
        for piece_id, _data in pieces:
            self.sends[piece_id] = d
        return d

    def complete(self, backup_id: str, blocks: int, size: int, source_size: int) -> Deferred[None]:
        self.calls.append(f"complete {blocks}")
        self.saving: Deferred[None] = Deferred()
        return self.saving

    def discard(self, backup_id: str) -> Deferred[None]:
        self.calls.append("discard")
        return succeed(None)

    def ack(self, piece_id: str) -> None:
        if not self.sends[piece_id].called:
            self.sends[piece_id].callback(None)

    def ack_all(self) -> None:
        for d in list(self.sends.values()):
            if not d.called:
                d.callback(None)


def start(blocks: int) -> tuple[BackupJob, FakeIO]:
    io = FakeIO(blocks)
    job = BackupJob(Clock(), None, io, "0", BACKUP, "/src")
    job.event("start")
    return job, io


def test_table_is_consistent() -> None:
    assert check_table(BackupJob) == []
    assert "CLEANUP" in to_dot(BackupJob)


def pieces(*blocks: int, supplier: int) -> list[str]:
    return [f"{BACKUP}/{n}-{supplier}-{kind}" for n in blocks for kind in ("Data", "Parity")]


def test_window_bounds_blocks_ahead_and_completion_waits_for_every_ack() -> None:
    total = WINDOW + 1
    job, io = start(total)
    assert job.state == RUNNING and io.calls == ["wait", "open"]
    io.produce()
    assert io.packets == [] and len(io.encodes) == 2  # block 0 waits for block 1, to share its packets
    for _ in range(WINDOW - 2):
        io.produce()
    assert len(io.encodes) == WINDOW - 1  # full window (block 4 held): no more reading until Acks come
    # One packet per supplier and pair of blocks: its Data and Parity piece of each.
    assert io.packets == [(0, pieces(0, 1, supplier=0)), (1, pieces(0, 1, supplier=1)),
                          (0, pieces(2, 3, supplier=0)), (1, pieces(2, 3, supplier=1))]
    io.ack(f"{BACKUP}/0-0-Data")
    assert len(io.encodes) == WINDOW - 1 and job.unacked[0] == job.unacked[1] == 2  # that packet's pieces counted
    io.ack(f"{BACKUP}/0-1-Data")
    assert len(io.encodes) == WINDOW  # blocks 0 and 1 acknowledged: one more block is read
    io.produce()  # block 5 goes out with block 4
    assert io.packets[-2:] == [(0, pieces(4, 5, supplier=0)), (1, pieces(4, 5, supplier=1))]
    io.ack_all()
    io.produce()  # the last block goes out alone
    assert io.packets[-2:] == [(0, pieces(6, supplier=0)), (1, pieces(6, supplier=1))] and not job.held
    io.produce()  # end of input
    assert job.eof and job.state == RUNNING and not any(c.startswith("complete") for c in io.calls)
    io.ack_all()
    # Not done before the complete version is saved: whoever waits may read the catalog file.
    assert job.state == SAVING and io.calls[-1] == f"complete {total}" and not job.finished.called
    job.abort()  # too late: the version is complete
    assert job.state == SAVING
    io.saving.callback(None)
    assert job.state == DONE and job.error == ""
    assert job.finished.called and job.progress()["progress"] == 100.0


def test_a_block_held_when_the_input_ends_still_goes_out() -> None:
    """The encoder flags its last block, which goes out at once; if an input ever ended
    without that flag, the held block must still be sent and counted, not left out."""
    job, io = start(5)
    io.encodes[0].callback(EncodedBlock(0, False, [bytes([0, i]) for i in range(4)], 10, 10))
    assert io.packets == [] and job.held
    io.encodes[1].callback(None)  # end of input
    assert io.packets == [(0, pieces(0, supplier=0)), (1, pieces(0, supplier=1))] and not job.held
    assert job.state == RUNNING
    io.ack_all()
    assert job.state == SAVING and io.calls[-1] == "complete 1"


def test_a_failed_save_of_the_complete_version_is_reported() -> None:
    job, io = start(1)
    io.produce()
    io.produce()  # end of input
    io.ack_all()
    assert job.state == SAVING
    io.saving.errback(OSError(28, "No space left on device"))
    assert job.state == DONE and "could not be recorded" in job.error and job.finished.called


def test_refused_piece_fails_after_the_others_settle_and_discards() -> None:
    job, io = start(3)
    io.produce()
    io.produce()
    first = sorted(io.sends)
    io.sends[first[0]].errback(RuntimeError("over-quota: full"))
    assert job.state == "CLEANUP" and "discard" not in io.calls  # the other packet is still in the air
    assert job.outstanding == 4
    io.produce()  # a block read meanwhile is not sent
    assert len(io.sends) == 8
    io.ack_all()
    assert job.state == FAILED and io.calls[-1] == "discard" and "over-quota" in job.error


def test_abort_waits_for_pieces_in_flight_then_discards() -> None:
    job, io = start(10)
    io.produce()
    io.produce()
    io.produce()  # block 2 is held for block 3
    job.abort()
    assert job.state == "CLEANUP" and job.progress()["aborting"] and job.progress()["terminating"]
    assert len(io.encodes) == 4 and not job.held  # the read under way; the held block is dropped
    io.produce()
    assert job.state == "CLEANUP" and job.outstanding == 8  # the pieces of blocks 0 and 1 are in the air
    io.ack_all()
    assert job.state == ABORTED and io.calls[-1] == "discard" and len(io.packets) == 2
    assert not any(c.startswith("complete") for c in io.calls)


def test_abort_while_starting_and_read_failure() -> None:
    io = FakeIO(2)
    opening: Deferred[Opened] = Deferred()
    io.open = lambda path_id, backup_id: opening  # type: ignore[method-assign]
    job = BackupJob(Clock(), None, io, "0", BACKUP, "/src")
    job.event("start")
    job.abort()
    opening.callback(Opened(EccMap(2), 1024, 10))
    assert job.state == ABORTED and io.calls[-1] == "discard"
    job2, io2 = start(2)
    io2.encodes[0].errback(OSError("permission denied"))
    assert job2.state == FAILED and "permission denied" in job2.error and io2.calls[-1] == "discard"



def test_abort_while_waiting_for_suppliers_ends_the_wait() -> None:
    """The wait holds a timer and a listener on the customer service: an abort must end
    it, or its timer fires after the services stopped."""
    io = FakeIO(2)
    ended: list[str] = []
    io.suppliers_wait = Deferred(lambda _d: ended.append("cancelled"))
    job = BackupJob(Clock(), None, io, "0", BACKUP, "/src")
    job.event("start")
    assert job.state == "WAITING"
    job.abort()
    assert job.state == "ABORTED" and ended == ["cancelled"]
    assert io.calls == ["wait"], "nothing opened, nothing discarded"
