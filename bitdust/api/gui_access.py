"""Who may use the browser GUI: one-time tokens, session cookies and CSRF tokens.

The GUI is a page on ``http://127.0.0.1:<api port>/gui/``; the JSON-RPC API behind it
refuses calls without the API secret, and the secret must not sit in a URL, a page or
the browser's history. So:

1. ``show()`` (an API call, made with the secret) asks :meth:`GuiAccess.new_token` for a
   random one-time token, good for :data:`TOKEN_SECONDS` and one use, and opens the
   browser at ``/gui/?token=...``.
2. The GUI resource trades the token for a session: an ``HttpOnly; SameSite=Strict``
   cookie (its name carries the port, since browsers share cookies between ports of
   one host and several nodes may run on one machine), then redirects to ``/gui/``, so
   the token leaves the address bar and history at once.
3. The page reads its CSRF token from ``/gui/session`` (same origin; the answer has no
   CORS header, so another origin cannot read it) and sends it as ``X-BitDust-CSRF``
   with every JSON-RPC call. A call authorised by the cookie must carry that header
   with the session's value, and an ``Origin`` header, if any, must be this node's own
   origin. A page of another origin can therefore neither send the cookie (SameSite)
   nor set the header without a CORS preflight the server never grants.

Everything lives in memory on the node: a restart ends every session (run
``bitdust show`` again). ``Authorization: Bearer <secret>`` keeps working as before.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

TOKEN_SECONDS = 120.0
"""A one-time token is for the browser that ``show()`` just opened; it should not linger."""
SESSION_SECONDS = 12 * 3600.0
"""Idle sessions end; any authorised call extends the session by this much again."""
MAX_TOKENS = 32
MAX_SESSIONS = 64
"""Bounds on what the node keeps, so repeated ``show()`` calls cannot grow memory."""
CSRF_HEADER = b"x-bitdust-csrf"
LOCAL_HOSTS = ("127.0.0.1", "localhost")


@dataclass
class Session:
    csrf: str
    expires: float


@dataclass
class GuiAccess:
    """One-time tokens and sessions of one API server (one node)."""

    port: Callable[[], int]
    clock: Callable[[], float] = time.monotonic
    _tokens: dict[str, float] = field(default_factory=dict)
    _sessions: dict[str, Session] = field(default_factory=dict)

    @property
    def cookie_name(self) -> bytes:
        return f"bitdust_session_{self.port()}".encode("ascii")

    def origins(self) -> set[bytes]:
        return {f"http://{host}:{self.port()}".encode("ascii") for host in LOCAL_HOSTS}

    def hosts(self) -> set[bytes]:
        return {f"{host}:{self.port()}".encode("ascii") for host in LOCAL_HOSTS}

    def gui_url(self, token: str | None = None) -> str:
        base = f"http://127.0.0.1:{self.port()}/gui/"
        return f"{base}?token={token}" if token else base

    # -- one-time tokens ------------------------------------------------------------

    def new_token(self) -> str:
        self._prune()
        if len(self._tokens) >= MAX_TOKENS:
            oldest = min(self._tokens, key=lambda t: self._tokens[t])
            del self._tokens[oldest]
        token = secrets.token_urlsafe(32)
        self._tokens[token] = self.clock() + TOKEN_SECONDS
        return token

    def redeem(self, token: str) -> str | None:
        """A new session ID for a valid token (which is then spent), else None."""
        self._prune()
        found = next((t for t in self._tokens if hmac.compare_digest(t, token)), None)
        if found is None:
            return None
        del self._tokens[found]
        if len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions, key=lambda s: self._sessions[s].expires)
            del self._sessions[oldest]
        session_id = secrets.token_urlsafe(32)
        self._sessions[session_id] = Session(secrets.token_urlsafe(24), self.clock() + SESSION_SECONDS)
        return session_id

    # -- sessions ---------------------------------------------------------------------

    def session(self, session_id: bytes | None) -> Session | None:
        """The live session of a cookie value; extends it."""
        if not session_id:
            return None
        self._prune()
        text = session_id.decode("ascii", "replace")
        found = next((s for sid, s in self._sessions.items() if hmac.compare_digest(sid, text)), None)
        if found is not None:
            found.expires = self.clock() + SESSION_SECONDS
        return found

    def end(self, session_id: bytes | None) -> None:
        if session_id:
            self._sessions.pop(session_id.decode("ascii", "replace"), None)

    def allows_call(self, cookie: bytes | None, csrf: bytes | None, origin: bytes | None,
                    host: bytes | None) -> bool:
        """A JSON-RPC call without the bearer secret: needs the session cookie, the
        session's CSRF header, this node's Host and, when the browser names one, its Origin."""
        if host not in self.hosts() or (origin is not None and origin not in self.origins()):
            return False
        session = self.session(cookie)
        if session is None or not csrf:
            return False
        return hmac.compare_digest(csrf.decode("ascii", "replace"), session.csrf)

    def _prune(self) -> None:
        now = self.clock()
        for token in [t for t, expires in self._tokens.items() if expires < now]:
            del self._tokens[token]
        for sid in [s for s, session in self._sessions.items() if session.expires < now]:
            del self._sessions[sid]
