"""API calls answered by service_supplier: customers and donated space. Kept apart from
``methods.py`` so that file stays a table; the shapes are documented on the methods there."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThreadPool

from bitdust.api.results import error, ok
from bitdust.services.supplier import running_supplier
from bitdust.util.fs import folder_size
from bitdust.util.units import format_size, percent

if TYPE_CHECKING:
    from bitdust.node import Node


def customers_list(node: Node) -> dict[str, Any]:
    service = running_supplier(node, "customers_list")
    store = service.running_store("customers_list")
    presence = service.presence
    rows = []
    for contract in store.customers():
        used = store.used(contract.idurl)
        rows.append({
            "idurl": contract.idurl,
            "position": contract.position,
            "status": presence.status(contract.idurl) if presence is not None else "offline",
            "ecc_map": contract.ecc_map,
            "quota": contract.quota,
            "quotastr": format_size(contract.quota),
            "used": used,
            "usedstr": format_size(used),
            "numfiles": len(store.list_pieces(contract.idurl)),
            "first_contact": int(contract.first_contact),
            "last_contact": int(contract.last_contact),
        })
    return ok(rows)


@inlineCallbacks
def customer_reject(node: Node, idurl: Any) -> Any:
    service = running_supplier(node, "customer_reject")
    store = service.running_store("customer_reject")
    if not isinstance(idurl, str) or not store.is_customer(idurl):
        return error(f"{idurl} is not a customer of this node")
    freed = yield service.reject_customer(idurl, "rejected", "the supplier's owner rejected you")
    return ok([f"customer {idurl} rejected, {freed} bytes were freed"])


def customers_ping(node: Node) -> dict[str, Any]:
    running_supplier(node, "customers_ping").ping_customers()
    return ok("requests to all customers was sent")


def space_donated(node: Node) -> Any:
    service = running_supplier(node, "space_donated")
    store = service.running_store("space_donated")
    donated, consumed, used = store.donated(), store.consumed(), store.used()
    customers = [c.idurl for c in store.customers()]
    current = set(customers)
    former = [f["idurl"] for f in store.book.former if f.get("idurl") not in current]
    reactor = node.reactor

    def measure() -> int:
        return folder_size(store.root)

    def shape(real: int) -> dict[str, Any]:
        return ok([{
            "consumed": consumed, "consumedpercent": percent(consumed, donated),
            "consumedstr": format_size(consumed),
            "customers": customers, "customersnum": len(customers),
            "donated": donated, "donatedstr": format_size(donated),
            "free": max(0, donated - consumed),
            "oldcustomers": former,
            "real": real,
            "used": used, "usedpercent": percent(used, donated), "used_str": format_size(used),
        }])

    return deferToThreadPool(reactor, reactor.getThreadPool(), measure).addCallback(shape)

