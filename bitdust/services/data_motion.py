"""service_data_motion: the one :class:`~bitdust.storage.motion.DataMotion` of a node.

Backup, restore and rebuild reach it as
``node.services.instance("service_data_motion").motion`` (or :func:`running_motion`,
which answers ServiceUnavailable when it is off). Limits come from the config and are
read at each admission, so a change applies at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, maybeDeferred, succeed

from bitdust.services.customer import running_customer
from bitdust.services.gateway import running_gateway
from bitdust.services.service import Service, ServiceUnavailable
from bitdust.storage.motion import DataMotion

if TYPE_CHECKING:
    from bitdust.node import Node


class DataMotionService(Service):
    name = "service_data_motion"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.motion: DataMotion | None = None

    def start(self) -> Deferred[None]:
        return maybeDeferred(self._start)

    def _start(self) -> None:
        gateway = running_gateway(self.node, self.name)
        running_customer(self.node, self.name)
        config = self.node.config
        self.motion = DataMotion(
            gateway, self._supplier_at, self._is_me,
            max_in_flight=lambda: int(config.get("services/data-motion/max-in-flight")),
            max_per_supplier=lambda: int(config.get("services/data-motion/max-per-supplier")),
            send_timeout=lambda: float(config.get("services/data-motion/send-timeout-seconds")))
        self.motion.start()

    def stop(self) -> Deferred[None]:
        motion, self.motion = self.motion, None
        if motion is not None:
            motion.close()
        return succeed(None)

    def _supplier_at(self, position: int) -> str | None:
        try:
            suppliers = running_customer(self.node, self.name).running_list()
        except ServiceUnavailable:
            return None
        if not 0 <= position < suppliers.span:  # retained positions too: old versions live there
            return None
        return suppliers.idurl(position) or None

    def _is_me(self, idurl: str) -> bool:
        me = self.node.my_identity
        return me is not None and idurl in me.sources


def running_motion(node: Node, what: str) -> DataMotion:
    service = node.services.running("service_data_motion", DataMotionService, what, lambda s: s.motion is not None)
    assert service.motion is not None
    return service.motion
