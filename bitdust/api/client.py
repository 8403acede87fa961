"""A small synchronous JSON-RPC client that finds port and secret from a home folder.

Used by the CLI and by tests that drive a daemon in another process. It reads the
port from the home's config and the secret from ``metadata/apisecret``, so a user
never copies either by hand.
"""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bitdust.config import Config
from bitdust.home import Home


class ApiConnectionError(ConnectionError):
    """The daemon did not answer (not running, wrong port, refused the secret)."""


class RpcError(RuntimeError):
    """The server answered with a JSON-RPC error object (bad method or params)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"JSON-RPC error {code}: {message}")
        self.code = code
        self.message = message


class ApiClient:
    def __init__(self, url: str, secret: str | None, timeout: float = 30.0) -> None:
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self._ids = itertools.count(1)

    @classmethod
    def from_home(cls, home: Path | str, timeout: float = 30.0) -> ApiClient:
        layout = Home(Path(home))
        config = Config(layout.config)
        host = config.get("interface/api/host")
        port = config.get("interface/api/json-rpc-port")
        return cls(f"http://{host}:{port}/", layout.api_secret(), timeout)

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """Send raw bytes; return (HTTP status, body). For tests of malformed requests."""
        all_headers = {"Content-Type": "application/json"}
        if self.secret:
            all_headers["Authorization"] = f"Bearer {self.secret}"
        all_headers.update(headers or {})
        request = urllib.request.Request(self.url, data=body, headers=all_headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise ApiConnectionError(f"no answer from {self.url}: {exc}") from exc

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``method``; return the ``result`` member (usually a status dict)."""
        if args and kwargs:
            raise ValueError("JSON-RPC takes positional or keyword params, not both")
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": kwargs or list(args)}
        status, body = self.post(json.dumps(payload).encode("utf-8"))
        if status == 401:
            raise ApiConnectionError(f"{self.url} refused the API secret")
        try:
            answer = json.loads(body)
        except ValueError as exc:
            raise ApiConnectionError(f"HTTP {status}: not a JSON answer: {body[:200]!r}") from exc
        if answer.get("error"):
            err = answer["error"]
            raise RpcError(int(err.get("code", 0)), str(err.get("message", err)))
        return answer.get("result")
