"""CpuPool: jobs run in its threads, answers come back on the reactor thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import gatherResults

from bitdust.node import Node
from bitdust.util.cpu_pool import IDLE_SAMPLE_SECONDS, CpuPool, IdleCores, read_cpu_times


def where(_: object = None) -> str:
    return threading.current_thread().name


@pytest_twisted.inlineCallbacks
def test_a_job_runs_in_a_pool_thread_and_answers_on_the_reactor_thread() -> Any:
    pool = CpuPool(reactor, size=2)
    answered_in: list[str] = []
    try:
        ran_in = yield pool.run(where).addCallback(lambda name: answered_in.append(where()) or name)
        assert ran_in.startswith("cpu-") and answered_in == [where()]
        names = yield gatherResults([pool.run(where) for _ in range(20)])
        assert set(names) <= {"cpu-0", "cpu-1"} and pool.threads == 2
    finally:
        pool.stop()


@pytest_twisted.inlineCallbacks
def test_an_exception_in_a_job_fails_its_deferred_with_that_exception() -> Any:
    pool = CpuPool(reactor, size=1)

    def broken() -> None:
        raise ValueError("bad piece")

    try:
        with pytest.raises(ValueError, match="bad piece"):
            yield pool.run(broken)
        assert (yield pool.run(sum, [1, 2, 3])) == 6  # the thread lives on
    finally:
        pool.stop()


@pytest_twisted.inlineCallbacks
def test_stop_ends_the_threads_after_their_jobs_and_a_later_job_starts_them_again() -> Any:
    pool = CpuPool(reactor, size=2)
    started = threading.Event()
    release = threading.Event()

    def slow() -> str:
        started.set()
        assert release.wait(10)
        return "finished"

    pending = pool.run(slow)
    assert started.wait(10)
    threads = [t for t in threading.enumerate() if t.name.startswith("cpu-")]
    release.set()
    pool.stop()  # waits for the job already running
    assert pool.threads == 0 and not any(t.is_alive() for t in threads)
    assert (yield pending) == "finished"
    assert (yield pool.run(where)).startswith("cpu-") and pool.threads == 2
    pool.stop()


class _ThreadsOnlyReactor:
    """A reactor without an asyncio loop: answers must come through callFromThread."""

    def __init__(self) -> None:
        self.delivered = threading.Event()
        self.calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def callFromThread(self, fn: Callable[..., Any], *args: Any) -> None:
        self.calls.append((fn, args))
        self.delivered.set()


def test_other_reactors_get_the_answer_through_call_from_thread() -> None:
    fake = _ThreadsOnlyReactor()
    pool = CpuPool(fake, size=1)
    results: list[int] = []
    try:
        pool.run(len, b"abc").addCallback(results.append)
        assert fake.delivered.wait(10)
        assert results == []  # not fired in the worker thread
        fire, args = fake.calls[0]
        fire(*args)
        assert results == [3]
    finally:
        pool.stop()


def test_a_pool_needs_a_thread() -> None:
    with pytest.raises(ValueError):
        CpuPool(reactor, size=0)


@pytest_twisted.inlineCallbacks
def test_a_node_stops_its_pool_when_it_stops(tmp_path: Path) -> Any:
    node = Node(tmp_path / "home", reactor=reactor, services={})
    before = set(threading.enumerate())
    assert (yield node.cpu_pool.run(len, b"abc")) == 3
    started = [t for t in threading.enumerate() if t not in before]
    assert started and node.cpu_pool.threads == len(started)
    yield node.stop()
    assert node.cpu_pool.threads == 0 and not any(t.is_alive() for t in started)


def test_idle_cores_are_read_from_the_cpu_counters_once_per_sample() -> None:
    now = [0.0]
    ticks = [(100, 1000)]
    reads: list[float] = []

    def read() -> tuple[int, int]:
        reads.append(now[0])
        return ticks[-1]

    idle = IdleCores(read=read, now=lambda: now[0], cpus=4)
    assert idle() is None, "no sample yet: nothing is known"
    now[0], ticks[-1] = 0.1, (150, 1100)
    assert idle() is None and reads == [0.0], "within a sample the counters are not read again"
    now[0] = IDLE_SAMPLE_SECONDS
    assert idle() == pytest.approx(4 * 50 / 100) and len(reads) == 2
    ticks.append((150, 1200))  # 100 ticks, none idle
    now[0] = 2 * IDLE_SAMPLE_SECONDS
    assert idle() == 0
    assert IdleCores(read=lambda: None)() is None, "no counters (not Linux): unknown"


def test_cpu_counters_come_from_the_first_line_of_proc_stat(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_bytes(b"cpu  10 1 20 300 5 0 2 0 0 0\ncpu0 5 0 10 150 2 0 1 0 0 0\n")
    assert read_cpu_times(str(stat)) == (305, 338)
    assert read_cpu_times(str(tmp_path / "missing")) is None
    stat.write_bytes(b"intr 1 2 3\n")
    assert read_cpu_times(str(stat)) is None
    if Path("/proc/stat").exists():
        real = read_cpu_times()
        assert real is not None and 0 <= real[0] <= real[1]


def test_threads_are_worth_it_only_while_a_core_is_idle_with_hysteresis() -> None:
    seen: list[float | None] = [None, 1.5, 0.5, 0.2, 0.5, 0.69, 0.9, 0.4]
    answers = iter(seen)
    pool = CpuPool(reactor, size=1, idle_cores=lambda: next(answers))
    decided = [pool.worth_a_thread() for _ in seen]
    # unknown -> threads; stop under a third of a core idle; resume only over 0.7
    assert decided == [True, True, True, False, False, False, True, True]
    pool.mode = "inline"
    assert not pool.worth_a_thread()
    pool.mode = "threads"
    assert pool.worth_a_thread()
