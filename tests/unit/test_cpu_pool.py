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
from bitdust.util.cpu_pool import CpuPool


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
