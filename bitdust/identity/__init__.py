"""Who a node is: idurls and the signed identity document.

- :mod:`bitdust.identity.idurl`: ``http://<host>:<port>/<name>.xml`` names, strictly parsed.
- :mod:`bitdust.identity.document`: the :class:`Identity` document, XML and signatures.
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
