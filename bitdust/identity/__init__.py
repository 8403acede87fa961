"""Who a node is: idurls and the signed identity document.

- :mod:`bitdust.identity.idurl`: ``http://<host>:<port>/<name>.xml`` names, strictly parsed.
- :mod:`bitdust.identity.document`: the :class:`Identity` document, XML and signatures.
- :mod:`bitdust.identity.cache`: other nodes' identities, fetched over HTTP, pinned per idurl.
- :mod:`bitdust.identity.server`: the HTTP resource of an identity server.
- :mod:`bitdust.identity.my_id`, :mod:`bitdust.identity.publisher`: this node's own identity.
- :mod:`bitdust.identity.commands`: ``bitdust identity create|show``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bitdust.identity.document import Identity, IdentityError, make_contact, parse_contact
    from bitdust.identity.idurl import IdurlError, is_idurl, make_idurl, parse_idurl, valid_name

# Resolved on first use (PEP 562), so that importing a submodule such as
# bitdust.identity.commands (done by every `bitdust` command) does not load the RSA and
# XML code with it.
_EXPORTS = {
    "Identity": "bitdust.identity.document",
    "IdentityError": "bitdust.identity.document",
    "make_contact": "bitdust.identity.document",
    "parse_contact": "bitdust.identity.document",
    "IdurlError": "bitdust.identity.idurl",
    "is_idurl": "bitdust.identity.idurl",
    "make_idurl": "bitdust.identity.idurl",
    "parse_idurl": "bitdust.identity.idurl",
    "valid_name": "bitdust.identity.idurl",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

__all__ = [
    "Identity",
    "IdentityError",
    "IdurlError",
    "is_idurl",
    "make_contact",
    "make_idurl",
    "parse_contact",
    "parse_idurl",
    "valid_name",
]
