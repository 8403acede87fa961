"""network_connector: knows whether this node is online.

Online means the address the node's transports use (``network/host``) is configured on
an interface that is up. On a loopback network that is ``lo``. Transports of later
releases add their own checks through ``probes``: a node is online only if every probe
says so. The check repeats every minute, and at once on ``reconnect``.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable

import psutil
from twisted.internet.interfaces import IReactorTime

from bitdust.automats.automat import ANY, Automat, AutomatRegistry, Timer, Transition

log = logging.getLogger(__name__)

Probe = Callable[[], str | None]
"""Returns None when fine, or a reason why the node is not online."""


def interface_probe(host: str) -> Probe:
    def probe() -> str | None:
        try:
            wanted = ipaddress.ip_address(host)
        except ValueError:
            return f"network/host {host!r} is not an IP address"
        stats = psutil.net_if_stats()
        for name, addrs in psutil.net_if_addrs().items():
            for addr in addrs:
                if addr.family not in (socket.AF_INET, socket.AF_INET6):
                    continue
                try:
                    same = ipaddress.ip_address(addr.address.split("%")[0]) == wanted
                except ValueError:
                    continue
                if same:
                    return None if stats.get(name) and stats[name].isup else f"interface {name} is down"
        if wanted.is_unspecified:
            return None
        return f"no interface has the address {host}"

    return probe


class NetworkConnector(Automat):
    name = "network_connector"
    initial_state = "AT_STARTUP"
    transitions = {
        ("AT_STARTUP", "init"): [Transition("CONNECTING", ("check",))],
        ("CONNECTING", "check-done"): [Transition("CONNECTED", guard="online"),
                                       Transition("DISCONNECTED")],
        ("CONNECTED", "reconnect"): [Transition("CONNECTING", ("check",))],
        ("CONNECTED", "timer-1min"): [Transition("CONNECTING", ("check",))],
        ("DISCONNECTED", "reconnect"): [Transition("CONNECTING", ("check",))],
        ("DISCONNECTED", "timer-1min"): [Transition("CONNECTING", ("check",))],
        (ANY, "shutdown"): [Transition("CLOSED", ("destroy_me",))],
    }
    timers = {"timer-1min": Timer(60.0, ("CONNECTED", "DISCONNECTED"))}

    def __init__(self, clock: IReactorTime, registry: AutomatRegistry, probes: list[Probe]) -> None:
        super().__init__(clock, registry)
        self.probes = probes
        self.problems: list[str] = []

    def is_online(self) -> bool:
        return not self.problems

    def do_check(self) -> None:
        self.problems = [reason for reason in (probe() for probe in self.probes) if reason]
        if self.problems:
            log.warning("network is down: %s", "; ".join(self.problems))
        self.event("check-done")

    def do_destroy_me(self) -> None:
        self.destroy()
