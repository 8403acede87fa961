"""State machines whose transitions are data.

A machine declares ``transitions``: a mapping ``(state, event) -> [Transition, ...]``.
The first transition whose guard holds (or that has none) is taken: the state changes,
then the actions run in order. Actions and guards are method names (``do_<action>``,
``is_<guard>``), so a table can be listed, drawn (:func:`to_dot`) and tested with
recorded actions without any network.

Events raised while a transition runs are queued and processed after it (run to
completion), so an action can safely fire the next event on its own machine.

Timers are data too: ``timers = {"timer-10sec": Timer(10.0, ("STATE", ...))}``. A timer
runs while the machine is in one of its states and fires its name as an event.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

log = logging.getLogger(__name__)

ANY = "*"
"""Wildcard for a state in a transition key: the event is handled in every state."""

MAX_EVENTS_PER_RUN = 10000
"""Events one outside call may cause before the machine is judged to be looping."""


@dataclass(frozen=True)
class Transition:
    next_state: str
    actions: tuple[str, ...] = ()
    guard: str | None = None


@dataclass(frozen=True)
class Timer:
    seconds: float
    states: tuple[str, ...]


TransitionTable = Mapping[tuple[str, str], Sequence[Transition]]


@dataclass
class _Pending:
    event: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


class AutomatError(RuntimeError):
    """A machine was driven in a way its table does not allow."""


class Automat:
    """Base class; subclasses set ``name``, ``initial_state``, ``transitions``, ``timers``."""

    name: ClassVar[str] = "automat"
    initial_state: ClassVar[str] = "AT_STARTUP"
    transitions: ClassVar[TransitionTable] = {}
    timers: ClassVar[Mapping[str, Timer]] = {}

    def __init__(self, clock: IReactorTime, registry: AutomatRegistry | None = None,
                 instance_name: str | None = None) -> None:
        self.clock = clock
        self.state = self.initial_state
        self.instance_name = instance_name or self.name
        self.index = 0
        self._queue: deque[_Pending] = deque()
        self._running = False
        self._active_timers: dict[str, IDelayedCall] = {}
        self._state_listeners: list[Callable[[Automat, str, str, str], None]] = []
        self._registry = registry
        if registry is not None:
            registry.add(self)
        self._update_timers()

    # -- driving -------------------------------------------------------------

    def event(self, event: str, *args: Any, **kwargs: Any) -> None:
        """Feed one event. Unhandled events are logged and ignored (machines are open)."""
        self._queue.append(_Pending(event, args, kwargs))
        if self._running:
            return
        self._running = True
        try:
            for _ in range(MAX_EVENTS_PER_RUN):
                if not self._queue:
                    return
                self._process(self._queue.popleft())
            self._queue.clear()
            raise AutomatError(f"{self.instance_name}: more than {MAX_EVENTS_PER_RUN} events in one run, "
                               f"last {event!r} in state {self.state}: the table loops")
        finally:
            self._running = False

    def _process(self, pending: _Pending) -> None:
        transition = self._select(pending)
        if transition is None:
            log.debug("%s: %r ignored in state %s", self.instance_name, pending.event, self.state)
            return
        old_state = self.state
        self.state = transition.next_state
        if old_state != self.state:
            log.debug("%s: %s -> %s on %r", self.instance_name, old_state, self.state, pending.event)
            self._update_timers()
        for action in transition.actions:
            getattr(self, "do_" + action)(*pending.args, **pending.kwargs)
        if old_state != self.state:
            for listener in list(self._state_listeners):
                listener(self, old_state, self.state, pending.event)
            self.state_changed(old_state, self.state, pending.event)

    def _select(self, pending: _Pending) -> Transition | None:
        for key in ((self.state, pending.event), (ANY, pending.event)):
            for transition in self.transitions.get(key, ()):
                if transition.guard is None or getattr(self, "is_" + transition.guard)(
                        *pending.args, **pending.kwargs):
                    return transition
        return None

    def state_changed(self, old_state: str, new_state: str, event: str) -> None:
        """Hook for subclasses; runs after the actions of a state change."""

    # -- observing -----------------------------------------------------------

    def add_state_listener(self, listener: Callable[[Automat, str, str, str], None]) -> None:
        self._state_listeners.append(listener)

    def remove_state_listener(self, listener: Callable[[Automat, str, str, str], None]) -> None:
        self._state_listeners = [fn for fn in self._state_listeners if fn is not listener]

    def when_state(self, *states: str) -> Deferred[str]:
        """A Deferred that fires with the state once the machine is in one of ``states``."""
        result: Deferred[str] = Deferred()
        if self.state in states:
            result.callback(self.state)
            return result

        def check(_machine: Automat, _old: str, new: str, _event: str) -> None:
            if new in states and not result.called:
                self.remove_state_listener(check)
                result.callback(new)

        self.add_state_listener(check)
        return result

    def active_timers(self) -> list[str]:
        return sorted(self._active_timers)

    # -- timers --------------------------------------------------------------

    def timer_seconds(self, name: str) -> float:
        """The delay of timer ``name`` each time it is armed; a machine that backs off
        (fire_hire's retries) overrides it, the table still names the timer."""
        return self.timers[name].seconds

    def _update_timers(self) -> None:
        for name, timer in self.timers.items():
            wanted = self.state in timer.states
            running = name in self._active_timers
            if wanted and not running:
                self._arm(name, self.timer_seconds(name))
            elif running and not wanted:
                self._active_timers.pop(name).cancel()

    def _arm(self, name: str, seconds: float) -> None:
        def fire() -> None:
            self._active_timers.pop(name, None)
            # Re-arm first: the event may move the machine out of the timer's states.
            if self.state in self.timers[name].states:
                self._arm(name, self.timer_seconds(name))
            self.event(name)

        self._active_timers[name] = self.clock.callLater(seconds, fire)

    # -- lifetime ------------------------------------------------------------

    def destroy(self) -> None:
        """Stop timers and leave the registry; the machine handles no more events."""
        for call in self._active_timers.values():
            call.cancel()
        self._active_timers.clear()
        self._state_listeners.clear()
        if self._registry is not None:
            self._registry.remove(self)
            self._registry = None

    def __repr__(self) -> str:
        return f"<{self.instance_name}({self.state})>"


class AutomatRegistry:
    """Every live machine of one node, by index (what ``automats_list()`` shows)."""

    def __init__(self) -> None:
        self._machines: dict[int, Automat] = {}
        self._next_index = 1

    def add(self, machine: Automat) -> None:
        machine.index = self._next_index
        self._next_index += 1
        self._machines[machine.index] = machine

    def remove(self, machine: Automat) -> None:
        self._machines.pop(machine.index, None)

    def all(self) -> list[Automat]:
        return [self._machines[i] for i in sorted(self._machines)]

    def find(self, name: str) -> Automat | None:
        for machine in self.all():
            if machine.instance_name == name:
                return machine
        return None

    def as_api(self) -> list[dict[str, Any]]:
        return [
            {"index": m.index, "name": m.instance_name, "state": m.state, "timers": ",".join(m.active_timers())}
            for m in self.all()
        ]


def to_dot(machine_class: type[Automat]) -> str:
    """Graphviz source of a machine's table, for documentation and review."""
    lines = [f'digraph "{machine_class.name}" {{', "  rankdir=LR;", '  node [shape=box, style=rounded];']
    lines.append(f'  "{machine_class.initial_state}" [style="rounded,bold"];')
    for (state, event), options in machine_class.transitions.items():
        for transition in options:
            label = event + (f" [{transition.guard}]" if transition.guard else "")
            if transition.actions:
                label += " / " + ", ".join(transition.actions)
            lines.append(f'  "{state}" -> "{transition.next_state}" [label="{label}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def check_table(machine_class: type[Automat]) -> list[str]:
    """Problems in a table: actions, guards or timers with no method/state. Empty if fine."""
    problems = []
    states = {machine_class.initial_state}
    for (state, _event), options in machine_class.transitions.items():
        states.add(state)
        for transition in options:
            states.add(transition.next_state)
            for action in transition.actions:
                if not callable(getattr(machine_class, "do_" + action, None)):
                    problems.append(f"{machine_class.name}: no method do_{action}")
            if transition.guard and not callable(getattr(machine_class, "is_" + transition.guard, None)):
                problems.append(f"{machine_class.name}: no method is_{transition.guard}")
    for name, timer in machine_class.timers.items():
        for state in timer.states:
            if state not in states:
                problems.append(f"{machine_class.name}: timer {name} names unknown state {state}")
    return problems
