"""Services: switchable parts of the daemon, started in dependency order.

:func:`built_services` maps each service whose code exists to its class; the rest of
the table in :mod:`bitdust.services.service` shows as NOT_INSTALLED.
"""

from __future__ import annotations

from bitdust.services.service import Service


def built_services() -> dict[str, type[Service]]:
    from bitdust.services.network import NetworkService

    return {cls.name: cls for cls in (NetworkService,)}
