"""Who a node is: idurls and the signed identity document.

- :mod:`bitdust.identity.idurl`: ``http://<host>:<port>/<name>.xml`` names, strictly parsed.
- :mod:`bitdust.identity.document`: the :class:`Identity` document, XML and signatures.
- :mod:`bitdust.identity.cache`: other nodes' identities, fetched over HTTP, pinned per idurl.
- :mod:`bitdust.identity.server`: the HTTP resource of an identity server.
- :mod:`bitdust.identity.my_id`, :mod:`bitdust.identity.publisher`: this node's own identity.
- :mod:`bitdust.identity.commands`: ``bitdust identity create|show``.
"""

from bitdust.identity.document import Identity, IdentityError, make_contact, parse_contact
from bitdust.identity.idurl import IdurlError, is_idurl, make_idurl, parse_idurl, valid_name

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
