"""initializer: brings a node up, one stage at a time.

LOCAL prepares the home folder (folders, API secret); SERVICES starts the enabled
services in dependency order; INTERFACES opens the JSON-RPC API. A failure in any stage
ends in FAILED with the reason, which ``bitdust start`` shows to the user.
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

_STAGES = ("LOCAL", "SERVICES", "INTERFACES")


class Initializer(Automat):
    name = "initializer"
    transitions = {
        ("AT_STARTUP", "run"): [Transition("LOCAL", ("init_local",))],
        ("LOCAL", "local-done"): [Transition("SERVICES", ("start_services",))],
        ("SERVICES", "services-started"): [Transition("INTERFACES", ("start_interfaces",))],
        ("INTERFACES", "interfaces-started"): [Transition("READY")],
        **{(stage, "failed"): [Transition("FAILED", ("report_failure",))] for stage in _STAGES},
    }

    def __init__(self, node: Node) -> None:
        super().__init__(node.clock, node.automats)
        self.node = node
        self.failure_reason = ""

    @property
    def starting(self) -> bool:
        """Between ``run`` and READY/FAILED: services may not all be up yet."""
        return self.state in _STAGES

    def _run_stage(self, step: Any, done_event: str) -> None:
        def ok(_: object) -> None:
            self.event(done_event)

        def failed(failure: Failure) -> None:
            self.event("failed", failure)

        maybeDeferred(step).addCallbacks(ok, failed)

    def do_init_local(self) -> None:
        self._run_stage(self.node.prepare_local, "local-done")

    def do_start_services(self) -> None:
        self._run_stage(self.node.services.start_all, "services-started")

    def do_start_interfaces(self) -> None:
        self._run_stage(self.node.start_interfaces, "interfaces-started")

    def do_report_failure(self, failure: Failure) -> None:
        self.failure_reason = failure.getErrorMessage()
        log.error("start-up failed: %s", self.failure_reason, exc_info=failure.value)
