"""Starts and stops services in dependency order.

Rules (DESIGN.md): enabled services start in dependency order and stop in reverse;
starting one starts (and enables) what it needs, and then any enabled service that was
only waiting for it; stopping one stops everything that depends on it (those keep their
``enabled`` setting and show ``DEPENDS_OFF``). Operations are serialized by one lock, so
an API call and a config change never interleave their steps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred, DeferredLock, inlineCallbacks, maybeDeferred, succeed
from twisted.python.failure import Failure

from bitdust.services.service import (
    SERVICE_TABLE,
    Service,
    ServiceError,
    ServiceSpec,
    ServiceUnavailable,
    normalize_name,
)

if TYPE_CHECKING:
    from bitdust.node import Node

log = logging.getLogger(__name__)

ON = "ON"
OFF = "OFF"
STARTING = "STARTING"
STOPPING = "STOPPING"
DEPENDS_OFF = "DEPENDS_OFF"
NOT_INSTALLED = "NOT_INSTALLED"

ServiceFactory = Callable[["Node"], Service]
S = TypeVar("S", bound=Service)


def dependency_order(specs: Iterable[ServiceSpec]) -> list[ServiceSpec]:
    """Topological order (stable: table order among equals). ServiceError on an unknown
    dependency or a cycle, naming the services involved."""
    by_name = {spec.name: spec for spec in specs}
    for spec in by_name.values():
        for dep in spec.depends:
            if dep not in by_name:
                raise ServiceError(f"{spec.name} depends on unknown service {dep}")
    order: list[ServiceSpec] = []
    done: set[str] = set()
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            cycle = [*visiting[visiting.index(name):], name]
            raise ServiceError("dependency cycle: " + " -> ".join(cycle))
        visiting.append(name)
        for dep in by_name[name].depends:
            visit(dep)
        visiting.pop()
        done.add(name)
        order.append(by_name[name])

    for name in by_name:
        visit(name)
    return order


class ServiceDriver:
    def __init__(self, node: Node, factories: Mapping[str, ServiceFactory],
                 specs: Iterable[ServiceSpec] = SERVICE_TABLE) -> None:
        self._node = node
        self._order = dependency_order(specs)
        self._specs = {spec.name: spec for spec in self._order}
        unknown = set(factories) - set(self._specs)
        if unknown:
            raise ServiceError(f"built services missing from the table: {sorted(unknown)}")
        self._instances: dict[str, Service] = {name: make(node) for name, make in factories.items()}
        self._states: dict[str, str] = {
            name: (OFF if name in self._instances else NOT_INSTALLED) for name in self._specs
        }
        self._errors: dict[str, str] = {}
        self._lock = DeferredLock()
        self._writing_config = False
        node.config.listen("services/", self._on_config_change)

    # -- queries -------------------------------------------------------------

    def resolve(self, name: str) -> str:
        service = normalize_name(name)
        if service not in self._specs:
            raise ServiceError(f"unknown service {name!r}")
        return service

    def state(self, name: str) -> str:
        return self._states[self.resolve(name)]

    def is_on(self, name: str) -> bool:
        return self.state(name) == ON

    def instance(self, name: str) -> Service:
        service = self.resolve(name)
        if service not in self._instances:
            raise ServiceError(f"{service} is not installed in this build")
        return self._instances[service]

    def running(self, name: str, kind: type[S], what: str, ready: Callable[[S], object] | None = None) -> S:
        """The ON instance of ``name`` (of class ``kind``, and ``ready`` if given), or
        ServiceUnavailable with the API's standard words: '<what> is not available:
        <service> is not running'."""
        service = self.resolve(name)
        instance = self._instances.get(service)
        if self._states[service] != ON or not isinstance(instance, kind) or (ready is not None and not ready(instance)):
            raise ServiceUnavailable(f"{what} is not available: {service} is not running")
        return instance

    def enabled(self, name: str) -> bool:
        return bool(self._node.config.get(self._specs[self.resolve(name)].config_path))

    def installed(self, name: str) -> bool:
        return self.resolve(name) in self._instances

    def info(self, name: str) -> dict[str, Any]:
        service = self.resolve(name)
        spec = self._specs[service]
        result: dict[str, Any] = {
            "configpath": spec.config_path,
            "depends": list(spec.depends),
            "enabled": self.enabled(service),
            "index": self._order.index(spec) + 1,
            "installed": service in self._instances,
            "name": service,
            "state": self._states[service],
        }
        if service in self._errors:
            result["error"] = self._errors[service]
        return result

    def all_info(self) -> list[dict[str, Any]]:
        return [self.info(spec.name) for spec in self._order]

    def dependents(self, name: str) -> list[str]:
        """Every service that needs ``name`` directly or not, in dependency order."""
        found = {self.resolve(name)}
        for spec in self._order:
            if any(dep in found for dep in spec.depends):
                found.add(spec.name)
        return [spec.name for spec in self._order if spec.name in found and spec.name != name]

    def requirements(self, name: str) -> list[str]:
        """Every service ``name`` needs, directly or not, in dependency order."""
        needed: set[str] = set()
        stack = [self.resolve(name)]
        while stack:
            for dep in self._specs[stack.pop()].depends:
                if dep not in needed:
                    needed.add(dep)
                    stack.append(dep)
        return [spec.name for spec in self._order if spec.name in needed]

    def idle(self) -> Deferred[None]:
        """Fires once every start/stop queued so far has finished (a config switch
        queues one): the API answers ``config_set`` after the change took effect."""
        return self._lock.run(succeed, None)

    # -- whole-node start and stop --------------------------------------------

    def start_all(self) -> Deferred[None]:
        return self._lock.run(self._start_enabled)

    def stop_all(self) -> Deferred[None]:
        return self._lock.run(self._stop_these, [spec.name for spec in self._order], OFF)

    # -- one service ----------------------------------------------------------

    def start_service(self, name: str) -> Deferred[None]:
        """Enable ``name`` and what it needs, start them, then any enabled dependents."""
        service = self.resolve(name)
        chain = [*self.requirements(service), service]
        missing = [s for s in chain if s not in self._instances]
        if missing:
            raise ServiceError(f"{service} cannot start: {', '.join(missing)} not installed in this build")
        self._set_enabled(chain, True)
        return self._lock.run(self._start_enabled)

    def stop_service(self, name: str) -> Deferred[None]:
        """Disable ``name`` and stop it with everything that depends on it."""
        service = self.resolve(name)
        self._set_enabled([service], False)
        return self._lock.run(self._stop_these, [service, *self.dependents(service)], DEPENDS_OFF)

    # -- steps (run under the lock) ---------------------------------------------

    @inlineCallbacks
    def _start_enabled(self) -> Any:
        for spec in self._order:
            name = spec.name
            if name not in self._instances or self._states[name] == ON:
                continue
            if not self.enabled(name):
                self._states[name] = OFF
                continue
            if any(self._states[dep] != ON for dep in spec.depends):
                self._states[name] = DEPENDS_OFF
                continue
            self._states[name] = STARTING
            try:
                yield self._instances[name].start()
            except Exception as exc:
                log.exception("%s failed to start", name)
                self._states[name] = OFF
                self._errors[name] = f"failed to start: {exc}"
                continue
            self._errors.pop(name, None)
            self._states[name] = ON
            log.info("%s is ON", name)

    @inlineCallbacks
    def _stop_these(self, names: list[str], dependent_state: str) -> Any:
        for name in reversed(names):
            if self._states[name] in (ON, STARTING):
                self._states[name] = STOPPING
                try:
                    yield self._instances[name].stop()
                except Exception:
                    log.exception("%s failed to stop cleanly", name)
                log.info("%s is OFF", name)
            if name in self._instances:
                disabled = not self.enabled(name)
                self._states[name] = OFF if disabled or dependent_state == OFF else DEPENDS_OFF

    # -- config ---------------------------------------------------------------

    def _set_enabled(self, names: list[str], value: bool) -> None:
        self._writing_config = True
        try:
            for name in names:
                self._node.config.set(self._specs[name].config_path, value)
        finally:
            self._writing_config = False

    def _on_config_change(self, key: str, _old: Any, new: Any) -> None:
        """Someone switched ``services/<x>/enabled`` through the config: follow it."""
        if self._writing_config or not key.endswith("/enabled"):
            return
        for spec in self._order:
            if spec.config_path == key and spec.name in self._instances:
                action = self.start_service if new else self.stop_service
                maybeDeferred(action, spec.name).addErrback(self._log_switch_failure, spec.name)

    def _log_switch_failure(self, failure: Failure, name: str) -> None:
        log.error("switching %s: %s", name, failure.getErrorMessage())
