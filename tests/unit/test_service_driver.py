"""The service driver: dependency order, cascades, cycles, config switches, failures."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed

from bitdust.config import Config
from bitdust.services.driver import (
    DEPENDS_OFF,
    NOT_INSTALLED,
    OFF,
    ON,
    STARTING,
    ServiceDriver,
    dependency_order,
)
from bitdust.services.service import SERVICE_TABLE, Service, ServiceError, ServiceSpec, normalize_name

SPECS = (
    ServiceSpec("service_network", (), "root"),
    ServiceSpec("service_gateway", ("service_network",), "needs network"),
    ServiceSpec("service_tcp_transport", ("service_gateway", "service_network"), "needs gateway"),
    ServiceSpec("service_backups", ("service_tcp_transport",), "needs transport"),
    ServiceSpec("service_restores", ("service_backups",), "not built in this test"),
)


class Recorder(Service):
    """A service that records start/stop into a shared journal."""

    def __init__(self, node: Any, name: str, journal: list[str], broken: bool = False) -> None:
        super().__init__(node)
        self.service_name = name
        self.journal = journal
        self.broken = broken
        self.pending: Deferred[None] | None = None

    def start(self) -> Deferred[None]:
        self.journal.append("start " + self.service_name)
        if self.broken:
            return fail(RuntimeError("disk on fire"))
        return succeed(None)

    def stop(self) -> Deferred[None]:
        self.journal.append("stop " + self.service_name)
        return succeed(None)


def make_driver(tmp_path: Path, broken: tuple[str, ...] = ()) -> tuple[ServiceDriver, list[str], Config]:
    config = Config(tmp_path / "config")
    node = SimpleNamespace(config=config)
    journal: list[str] = []
    factories = {
        spec.name: (lambda n, name=spec.name: Recorder(n, name, journal, broken=name in broken))
        for spec in SPECS[:4]
    }
    return ServiceDriver(node, factories, SPECS), journal, config  # type: ignore[arg-type]


def states(driver: ServiceDriver) -> dict[str, str]:
    return {info["name"]: info["state"] for info in driver.all_info()}


def test_full_table_orders_without_cycles() -> None:
    order = [spec.name for spec in dependency_order(SERVICE_TABLE)]
    for spec in SERVICE_TABLE:
        for dep in spec.depends:
            assert order.index(dep) < order.index(spec.name), (dep, spec.name)
    assert order[0] == "service_network"
    assert order[-1] == "service_keys_storage"


def test_cycle_is_reported_with_its_members() -> None:
    specs = (ServiceSpec("service_a", ("service_c",), ""), ServiceSpec("service_b", ("service_a",), ""),
             ServiceSpec("service_c", ("service_b",), ""))
    with pytest.raises(ServiceError, match="cycle: service_a -> service_c -> service_b -> service_a"):
        dependency_order(specs)


def test_unknown_dependency() -> None:
    with pytest.raises(ServiceError, match="unknown service service_ghost"):
        dependency_order((ServiceSpec("service_a", ("service_ghost",), ""),))


def test_normalize_name() -> None:
    assert normalize_name("backups") == "service_backups"
    assert normalize_name("backup-db") == "service_backup_db"
    assert normalize_name("service_tcp_connections") == "service_tcp_connections"
    assert ServiceSpec("service_tcp_connections", (), "").config_path == "services/tcp-connections/enabled"


def test_start_all_in_order_and_stop_in_reverse(tmp_path: Path) -> None:
    driver, journal, _ = make_driver(tmp_path)
    driver.start_all()
    assert journal == ["start service_network", "start service_gateway", "start service_tcp_transport",
                       "start service_backups"]
    assert states(driver)["service_restores"] == NOT_INSTALLED
    journal.clear()
    driver.stop_all()
    assert journal == ["stop service_backups", "stop service_tcp_transport", "stop service_gateway",
                       "stop service_network"]
    assert set(states(driver).values()) == {OFF, NOT_INSTALLED}


def test_disabled_service_leaves_dependents_depends_off(tmp_path: Path) -> None:
    driver, journal, config = make_driver(tmp_path)
    config.set("services/gateway/enabled", False)
    driver.start_all()
    assert states(driver) == {"service_network": ON, "service_gateway": OFF, "service_tcp_transport": DEPENDS_OFF,
                              "service_backups": DEPENDS_OFF, "service_restores": NOT_INSTALLED}
    assert journal == ["start service_network"]


def test_stop_cascades_to_dependents_and_start_brings_them_back(tmp_path: Path) -> None:
    driver, journal, config = make_driver(tmp_path)
    driver.start_all()
    journal.clear()
    driver.stop_service("gateway")
    assert journal == ["stop service_backups", "stop service_tcp_transport", "stop service_gateway"]
    assert config.get("services/gateway/enabled") is False
    assert config.get("services/backups/enabled") is True, "dependents keep their own setting"
    assert states(driver)["service_backups"] == DEPENDS_OFF
    journal.clear()
    driver.start_service("gateway")
    assert journal == ["start service_gateway", "start service_tcp_transport", "start service_backups"]
    assert all(state == ON for name, state in states(driver).items() if name != "service_restores")


def test_start_enables_what_it_needs(tmp_path: Path) -> None:
    driver, journal, config = make_driver(tmp_path)
    for name in ("network", "gateway", "tcp-transport", "backups"):
        config.set(f"services/{name}/enabled", False)
    driver.start_all()
    assert journal == []
    driver.start_service("service_tcp_transport")
    assert journal == ["start service_network", "start service_gateway", "start service_tcp_transport"]
    assert config.get("services/gateway/enabled") is True
    assert states(driver)["service_backups"] == OFF


def test_config_switch_starts_and_stops(tmp_path: Path) -> None:
    driver, journal, config = make_driver(tmp_path)
    driver.start_all()
    journal.clear()
    config.set("services/tcp-transport/enabled", "false")
    assert journal == ["stop service_backups", "stop service_tcp_transport"]
    config.set("services/tcp-transport/enabled", "true")
    assert journal[2:] == ["start service_tcp_transport", "start service_backups"]


def test_not_installed_cannot_start(tmp_path: Path) -> None:
    driver, journal, _ = make_driver(tmp_path)
    with pytest.raises(ServiceError, match="not installed"):
        driver.start_service("restores")
    with pytest.raises(ServiceError, match="unknown service"):
        driver.start_service("teleport")
    assert journal == []


def test_failed_start_is_reported_and_dependents_wait(tmp_path: Path) -> None:
    driver, _, _ = make_driver(tmp_path, broken=("service_gateway",))
    driver.start_all()
    info = driver.info("gateway")
    assert info["state"] == OFF
    assert "disk on fire" in info["error"]
    assert states(driver)["service_backups"] == DEPENDS_OFF


def test_operations_are_serialized(tmp_path: Path) -> None:
    config = Config(tmp_path / "config")
    node = SimpleNamespace(config=config)
    gate: Deferred[None] = Deferred()
    journal: list[str] = []

    class Slow(Service):
        def start(self) -> Deferred[None]:
            journal.append("slow start")
            return gate

        def stop(self) -> Deferred[None]:
            journal.append("slow stop")
            return succeed(None)

    driver = ServiceDriver(node, {"service_network": Slow}, SPECS[:1])  # type: ignore[arg-type]
    driver.start_all()
    assert driver.state("network") == STARTING
    driver.stop_service("network")
    assert journal == ["slow start"], "stop waits for the start in progress"
    gate.callback(None)
    assert journal == ["slow start", "slow stop"]
    assert driver.state("network") == OFF


def test_info_shape(tmp_path: Path) -> None:
    driver, _, _ = make_driver(tmp_path)
    driver.start_all()
    assert driver.info("service_gateway") == {
        "configpath": "services/gateway/enabled", "depends": ["service_network"], "enabled": True,
        "index": 2, "installed": True, "name": "service_gateway", "state": ON,
    }
