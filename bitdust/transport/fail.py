"""What a Fail packet says: a code to act on and a reason to show.

The payload is UTF-8 JSON ``{"code": "...", "reason": "..."}``. Readers decide on the code
alone; the reason is for people and logs. Before this, the gateway's own Fail was plain
text and a customer told "this node does not serve that (yet)" from a refusal by
matching the end of the sentence: one reworded message away from firing a supplier that
was only restarting.

Codes the gateway itself sends (services add their own; the storage market lists its
codes in :mod:`bitdust.storage.market`):

- ``unavailable``: no running service of this node handles that command (it is off, or
  stopping). Not a refusal: ask again later.
- ``bad-identity``: the identity document carried by the packet is not acceptable.
- ``refused``: a service turned the request down; the reason says why.

A Fail whose payload is not such an object (a foreign or older peer) decodes with the
code ``unknown`` and its text as the reason, never as an error: the Fail itself is what
matters to the waiting sender.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bitdust.transport.packet import Packet

UNAVAILABLE = "unavailable"
BAD_IDENTITY = "bad-identity"
REFUSED = "refused"
UNKNOWN = "unknown"
MAX_CODE_CHARS = 64
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class FailReason:
    code: str
    reason: str

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"

    def encode(self) -> bytes:
        return json.dumps({"code": self.code[:MAX_CODE_CHARS], "reason": self.reason[:MAX_REASON_CHARS]},
                          ensure_ascii=False).encode("utf-8")

    @classmethod
    def decode(cls, payload: bytes | memoryview) -> FailReason:
        """Lenient by design (see the module docstring): never raises."""
        text = str(payload[:4096], "utf-8", "replace")
        try:
            value = json.loads(text)
        except ValueError:
            return cls(UNKNOWN, text[:MAX_REASON_CHARS])
        code = value.get("code") if isinstance(value, dict) else None
        if not isinstance(code, str) or not code:
            return cls(UNKNOWN, text[:MAX_REASON_CHARS])
        return cls(code[:MAX_CODE_CHARS], str(value.get("reason", ""))[:MAX_REASON_CHARS])


def fail_reason(reply: Packet | None) -> FailReason:
    """What a reply that is not an Ack says (a send without a reply says so too)."""
    if reply is None:
        return FailReason(UNKNOWN, "no reply")
    return FailReason.decode(reply.payload)
