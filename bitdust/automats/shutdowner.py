"""shutdowner: takes a node down in the reverse order of start-up.

Interfaces close first (no new API calls arrive while services stop), then services
stop in reverse dependency order. A failing step is logged and the next one still runs:
a shutdown always reaches FINISHED.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import maybeDeferred
from twisted.python.failure import Failure

from bitdust.automats.automat import Automat, Transition

if TYPE_CHECKING:
    from bitdust.node import Node

log = logging.getLogger(__name__)


class Shutdowner(Automat):
    name = "shutdowner"
    transitions = {
        ("AT_STARTUP", "init"): [Transition("READY")],
        ("READY", "stop"): [Transition("STOP_INTERFACES", ("stop_interfaces",))],
        ("STOP_INTERFACES", "interfaces-stopped"): [Transition("STOP_SERVICES", ("stop_services",))],
        ("STOP_SERVICES", "services-stopped"): [Transition("FINISHED")],
    }

    def __init__(self, node: Node) -> None:
        super().__init__(node.clock, node.automats)
        self.node = node

    def _run_step(self, step: Any, done_event: str) -> None:
        def logged(failure: Failure) -> None:
            log.error("shutdown step failed: %s", failure.getErrorMessage(), exc_info=failure.value)

        maybeDeferred(step).addErrback(logged).addBoth(lambda _: self.event(done_event))

    def do_stop_interfaces(self) -> None:
        self._run_step(self.node.stop_interfaces, "interfaces-stopped")

    def do_stop_services(self) -> None:
        self._run_step(self.node.services.stop_all, "services-stopped")
