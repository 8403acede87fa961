"""The ``/gui/`` part of the API server: the static page, the token exchange, the session.

The files under ``bitdust/gui/static`` are read once when the server is built (a few
tens of KB), so serving them never touches the disk on the reactor thread. Every answer
carries a strict Content-Security-Policy (scripts and connections to this origin only,
no framing) and is refused unless the Host header is this node's own loopback address,
which defeats DNS rebinding. See :mod:`bitdust.api.gui_access` for the access design.
"""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Any

from twisted.web import resource, server

from bitdust.api.gui_access import CSRF_HEADER, GuiAccess

STATIC = Path(__file__).resolve().parent.parent / "gui" / "static"
MAX_FILES = 200
TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml",
         ".png": "image/png", ".json": "application/json", ".ico": "image/x-icon"}
CSP = (b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def load_static(folder: Path = STATIC) -> dict[str, tuple[bytes, bytes]]:
    """``{'app.js': (content-type, bytes), 'views/files.js': ...}``."""
    files: dict[str, tuple[bytes, bytes]] = {}
    if not folder.is_dir():
        return files
    for path in sorted(folder.rglob("*")):
        if path.is_file() and len(files) < MAX_FILES:
            kind = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            charset = "; charset=utf-8" if kind.startswith("text/") or kind.endswith("json") else ""
            files[path.relative_to(folder).as_posix()] = ((kind + charset).encode(), path.read_bytes())
    return files


def _headers(request: server.Request) -> None:
    request.setHeader(b"content-security-policy", CSP)
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"x-frame-options", b"DENY")
    request.setHeader(b"referrer-policy", b"no-referrer")
    request.setHeader(b"cache-control", b"no-store")


def _json(request: server.Request, code: int, body: dict[str, Any]) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(body).encode()


class GuiResource(resource.Resource):
    """``/gui/``: ``index.html`` (or a token exchange), ``session``, ``logout``, the files."""

    isLeaf = True

    def __init__(self, access: GuiAccess, files: dict[str, tuple[bytes, bytes]] | None = None) -> None:
        super().__init__()
        self.access = access
        self.files = load_static() if files is None else files

    def render(self, request: server.Request) -> bytes:
        _headers(request)
        if request.getHeader(b"host") not in self.access.hosts():
            return _json(request, 403, {"error": "the GUI answers only at its own address, 127.0.0.1"})
        if not request.postpath:
            request.setResponseCode(301)
            request.setHeader(b"location", b"/gui/")
            return b""
        parts = [p.decode("utf-8", "replace") for p in request.postpath]
        name = "/".join(parts)
        if name == "session":
            return self._session(request)
        if name == "logout":
            return self._logout(request)
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            return b""
        if name in ("", "index.html"):
            token = request.args.get(b"token")
            if token:
                return self._exchange(request, token[0].decode("ascii", "replace"))
            name = "index.html"
        found = self.files.get(name)
        if found is None or ".." in parts:
            return _json(request, 404, {"error": f"no such file: {name}"})
        request.setHeader(b"content-type", found[0])
        return found[1]

    def _exchange(self, request: server.Request, token: str) -> bytes:
        """Spend the token for a session cookie; redirect so the token leaves the address bar."""
        session_id = self.access.redeem(token)
        if session_id is not None:
            request.setHeader(b"set-cookie", self.access.cookie_name + b"=" + session_id.encode("ascii")
                              + b"; Path=/; HttpOnly; SameSite=Strict")
            target = b"/gui/"
        else:
            target = b"/gui/#expired"
        request.setResponseCode(303)
        request.setHeader(b"location", target)
        return b""

    def _session(self, request: server.Request) -> bytes:
        session = self.access.session(request.getCookie(self.access.cookie_name))
        if session is None:
            return _json(request, 401, {"error": "not signed in: open the GUI with `bitdust show`, "
                                                 "which gives a one-time link"})
        return _json(request, 200, {"csrf": session.csrf, "header": CSRF_HEADER.decode()})

    def _logout(self, request: server.Request) -> bytes:
        cookie = request.getCookie(self.access.cookie_name)
        origin = request.getHeader(b"origin")
        if request.method != b"POST" or not self.access.allows_call(
                cookie, request.getHeader(CSRF_HEADER), origin, request.getHeader(b"host")):
            return _json(request, 403, {"error": "refused"})
        self.access.end(cookie)
        request.setHeader(b"set-cookie", self.access.cookie_name + b"=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
        return _json(request, 200, {"result": "signed out"})
