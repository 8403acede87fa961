"""The automat base: transitions as data, guards, queued events, timers on task.Clock."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.task import Clock

from bitdust.automats import ANY, Automat, AutomatRegistry, Timer, Transition
from bitdust.automats.automat import AutomatError, check_table, to_dot
from bitdust.automats.initializer import Initializer
from bitdust.automats.network_connector import NetworkConnector
from bitdust.automats.shutdowner import Shutdowner


class Door(Automat):
    """A small machine used to exercise the base: records every action it runs."""

    name = "door"
    initial_state = "CLOSED"
    transitions = {
        ("CLOSED", "open"): [Transition("LOCKED", guard="locked"), Transition("OPEN", ("log_open",))],
        ("OPEN", "close"): [Transition("CLOSED", ("log_close",))],
        ("OPEN", "timer-5sec"): [Transition("CLOSED", ("log_auto",))],
        ("OPEN", "slam"): [Transition("OPEN", ("close_myself",))],
        (ANY, "break"): [Transition("BROKEN", ("log_break",))],
    }
    timers = {"timer-5sec": Timer(5.0, ("OPEN",)), "timer-1sec": Timer(1.0, ("LOCKED",))}

    def __init__(self, clock: Clock, registry: AutomatRegistry | None = None, locked: bool = False) -> None:
        self.locked = locked
        self.actions: list[tuple[str, tuple[Any, ...]]] = []
        super().__init__(clock, registry)

    def is_locked(self, *_args: Any) -> bool:
        return self.locked

    def do_log_open(self, *args: Any) -> None:
        self.actions.append(("open", args))

    def do_log_close(self, *args: Any) -> None:
        self.actions.append(("close", args))

    def do_log_auto(self, *args: Any) -> None:
        self.actions.append(("auto", args))

    def do_log_break(self, *args: Any) -> None:
        self.actions.append(("break", args))

    def do_close_myself(self, *args: Any) -> None:
        self.event("close", "from-slam")
        # run to completion: the queued event has not run yet
        self.actions.append(("slam-done", (self.state,)))


def test_transitions_and_actions_with_args() -> None:
    door = Door(Clock())
    door.event("open", "alice")
    assert door.state == "OPEN"
    door.event("close")
    assert door.state == "CLOSED"
    assert door.actions == [("open", ("alice",)), ("close", ())]


def test_guard_selects_transition() -> None:
    door = Door(Clock(), locked=True)
    door.event("open")
    assert door.state == "LOCKED"
    assert door.actions == []


def test_unhandled_event_is_ignored() -> None:
    door = Door(Clock())
    door.event("close")
    assert door.state == "CLOSED"
    assert door.actions == []


def test_wildcard_state() -> None:
    door = Door(Clock())
    door.event("open")
    door.event("break")
    assert door.state == "BROKEN"


def test_events_raised_in_actions_are_queued() -> None:
    door = Door(Clock())
    door.event("open")
    door.event("slam")
    assert door.actions[-2:] == [("slam-done", ("OPEN",)), ("close", ("from-slam",))]
    assert door.state == "CLOSED"


def test_timers_run_only_in_their_states() -> None:
    clock = Clock()
    door = Door(clock)
    assert door.active_timers() == []
    door.event("open")
    assert door.active_timers() == ["timer-5sec"]
    clock.advance(4.9)
    assert door.state == "OPEN"
    clock.advance(0.2)
    assert door.state == "CLOSED"
    assert door.actions[-1] == ("auto", ())
    assert door.active_timers() == []
    assert clock.getDelayedCalls() == []


def test_timer_cancelled_on_leaving_state() -> None:
    clock = Clock()
    door = Door(clock)
    door.event("open")
    door.event("close")
    clock.advance(10)
    assert [a for a, _ in door.actions] == ["open", "close"]


def test_registry_lists_machines_for_api() -> None:
    registry = AutomatRegistry()
    clock = Clock()
    first, second = Door(clock, registry), Door(clock, registry)
    second.event("open")
    assert registry.as_api() == [
        {"index": 1, "name": "door", "state": "CLOSED", "timers": ""},
        {"index": 2, "name": "door", "state": "OPEN", "timers": "timer-5sec"},
    ]
    first.destroy()
    assert [m["index"] for m in registry.as_api()] == [2]


def test_when_state() -> None:
    door = Door(Clock())
    fired: list[str] = []
    door.when_state("OPEN").addCallback(fired.append)
    door.event("open")
    door.event("close")
    door.event("open")
    assert fired == ["OPEN"]


def test_event_queue_is_bounded() -> None:
    class Echo(Automat):
        name = "echo"
        transitions = {("AT_STARTUP", "ping"): [Transition("AT_STARTUP", ("ping_again",))]}

        def do_ping_again(self) -> None:
            self.event("ping")

    echo = Echo(Clock())
    with pytest.raises(AutomatError, match="loops"):
        echo.event("ping")
    # After the error the machine is usable again: nothing is left queued.
    assert not echo._queue


@pytest.mark.parametrize("machine", [Door, Initializer, Shutdowner, NetworkConnector])
def test_tables_are_consistent(machine: type[Automat]) -> None:
    assert check_table(machine) == []


def test_check_table_finds_missing_methods() -> None:
    class Broken(Automat):
        name = "broken"
        transitions = {("AT_STARTUP", "go"): [Transition("X", ("nothing",), guard="never")]}
        timers = {"t": Timer(1.0, ("NOWHERE",))}

    problems = check_table(Broken)
    assert any("do_nothing" in p for p in problems)
    assert any("is_never" in p for p in problems)
    assert any("NOWHERE" in p for p in problems)


def test_dot_export() -> None:
    dot = to_dot(Door)
    assert dot.startswith('digraph "door"')
    assert '"CLOSED" -> "OPEN" [label="open / log_open"]' in dot
    assert '"CLOSED" -> "LOCKED" [label="open [locked]"]' in dot


def test_network_connector_with_probes() -> None:
    clock = Clock()
    reasons: list[str | None] = [None]
    connector = NetworkConnector(clock, AutomatRegistry(), [lambda: reasons[0]])
    connector.event("init")
    assert connector.state == "CONNECTED"
    reasons[0] = "cable cut"
    clock.advance(60)
    assert connector.state == "DISCONNECTED"
    assert connector.problems == ["cable cut"]
    reasons[0] = None
    connector.event("reconnect")
    assert connector.state == "CONNECTED"
    connector.event("shutdown")
    assert connector.state == "CLOSED"
    assert clock.getDelayedCalls() == []
