"""API calls of the customer side: suppliers and consumed space. Kept apart from
``methods.py`` so that file stays a table; the shapes are documented on the methods there."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.defer import inlineCallbacks

from bitdust.api.results import ApiError, error, ok
from bitdust.identity.idurl import is_idurl
from bitdust.services.customer import CustomerService, running_customer
from bitdust.services.employer import running_employer
from bitdust.storage.customer.connector import CONNECTED
from bitdust.storage.customer.fire_hire import ReplaceRefused
from bitdust.util.units import format_size, percent

if TYPE_CHECKING:
    from bitdust.node import Node

TIME_FORMAT = "%d-%m-%Y %H:%M:%S"
CHANGE_WAIT = 25.0
"""Seconds supplier_change waits for the named node (under the CLI's 30 s): fire_hire
may be busy with another job first, and asking takes up to 3 request timeouts."""


def suppliers_list(node: Node) -> dict[str, Any]:
    customer = running_customer(node, "suppliers_list")
    rows = []
    for slot in customer.running_list().slots():
        connector = customer.connectors.get(slot.position) if slot.idurl else None
        rows.append({
            "connected": time.strftime(TIME_FORMAT, time.localtime(slot.connected)) if slot.connected else "",
            "idurl": slot.idurl,
            "numfiles": (connector.numfiles or 0) if connector is not None else 0,
            "position": slot.position,
            "status": "online" if connector is not None and connector.state == CONNECTED else "offline",
        })
    return ok(rows)


def suppliers_ping(node: Node) -> dict[str, Any]:
    running_customer(node, "suppliers_ping").ping_all()
    return ok("requests to all suppliers was sent")


def supplier_replace(node: Node, index_or_idurl: Any) -> dict[str, Any]:
    fire_hire = running_employer(node, "supplier_replace").running_fire_hire("supplier_replace")
    customer = running_customer(node, "supplier_replace")
    position, idurl = _find_supplier(customer, index_or_idurl)
    _check_safe(fire_hire.safe_to_replace(position), customer, idurl)
    fire_hire.replace(position)
    return ok(f"supplier {idurl} will be replaced by new peer")


@inlineCallbacks
def supplier_change(node: Node, index_or_idurl: Any, new_idurl: Any) -> Any:
    fire_hire = running_employer(node, "supplier_change").running_fire_hire("supplier_change")
    customer = running_customer(node, "supplier_change")
    position, idurl = _find_supplier(customer, index_or_idurl)
    if not isinstance(new_idurl, str) or not is_idurl(new_idurl):
        return error(f"supplier_change: {new_idurl!r} is not an idurl")
    if new_idurl == customer.my_idurl():
        return error("supplier_change: this node cannot be its own supplier")
    current = customer.running_list().position_of(new_idurl)
    if current is not None:
        return error(f"supplier_change: {new_idurl} is already the supplier at position {current}")
    _check_safe(fire_hire.safe_to_replace(position), customer, idurl)
    try:
        yield fire_hire.change(position, new_idurl).addTimeout(CHANGE_WAIT, node.reactor)
    except ReplaceRefused as exc:
        return error(f"supplier_change: {new_idurl} did not take position {position} ({exc}); "
                     f"supplier {idurl} is kept")
    except defer.TimeoutError:
        return error(f"supplier_change: {new_idurl} has not answered within {CHANGE_WAIT:g} s; the change "
                     f"stays queued, suppliers_list shows when it happened")
    return ok(f"supplier {idurl} will be replaced by {new_idurl}")


def space_consumed(node: Node) -> dict[str, Any]:
    customer = running_customer(node, "space_consumed")
    suppliers = customer.running_list()
    count = suppliers.size
    needed = int(node.config.get("services/customer/needed-space"))
    needed_per = math.ceil(needed / count)
    used = sum(c.used_bytes or 0 for c in customer.connectors.values() if c.idurl in suppliers.idurls())
    used_per = math.ceil(used / count)
    available, available_per = max(0, needed - used), max(0, needed_per - used_per)
    return ok([{
        "available": available, "availablepersupplier": available_per,
        "availablepersupplierstr": format_size(available_per), "availablestr": format_size(available),
        "needed": needed, "neededpersupplier": needed_per,
        "neededpersupplierstr": format_size(needed_per), "neededstr": format_size(needed),
        "suppliersnum": count,
        "used": used, "usedpersupplier": used_per, "usedpersupplierstr": format_size(used_per),
        "usedpercent": percent(used, needed), "usedstr": format_size(used),
    }])


def _find_supplier(customer: CustomerService, index_or_idurl: Any) -> tuple[int, str]:
    """(position, idurl) of a hired supplier named by position (int or digits) or idurl."""
    suppliers = customer.running_list()
    if isinstance(index_or_idurl, bool):
        raise ApiError(f"{index_or_idurl!r} is neither a position nor an idurl")
    if isinstance(index_or_idurl, int) or (isinstance(index_or_idurl, str) and index_or_idurl.strip().isdigit()):
        position = int(index_or_idurl)
        if not 0 <= position < suppliers.size:
            raise ApiError(f"position {position} is outside 0..{suppliers.size - 1}")
        idurl = suppliers.idurl(position)
        if not idurl:
            raise ApiError(f"position {position} has no supplier yet")
        return position, idurl
    if isinstance(index_or_idurl, str):
        found = suppliers.position_of(index_or_idurl)
        if found is not None:
            return found, index_or_idurl
        raise ApiError(f"{index_or_idurl} is not one of my suppliers")
    raise ApiError(f"{index_or_idurl!r} is neither a position nor an idurl")


def _check_safe(safe: bool, customer: CustomerService, idurl: str) -> None:
    if safe:
        return
    views = customer.positions()
    missing = sum(1 for v in views if v.state != CONNECTED)
    raise ApiError(f"supplier {idurl} cannot be replaced now: {missing} of {len(views)} suppliers are not "
                   f"connected, and with ecc/{len(views)}x{len(views)} at most {len(views) // 2} may be "
                   f"missing at once or stored data could not be decoded")
