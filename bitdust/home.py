"""Where a node keeps everything: one home folder per node.

Chosen by ``--home DIR``, else ``$BITDUST_HOME``, else ``~/.bitdust``. Several nodes
run on one machine with distinct homes (and ports).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from bitdust.util.fs import atomic_write_text

ENV_HOME = "BITDUST_HOME"


def resolve_home(cli_home: str | None = None) -> Path:
    chosen = cli_home or os.environ.get(ENV_HOME) or str(Path.home() / ".bitdust")
    return Path(chosen).expanduser().resolve()


@dataclass(frozen=True)
class Home:
    """Paths inside one home folder. Creating it is explicit: :meth:`ensure`."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def metadata(self) -> Path:
        """Keys, the API secret and the pid file: readable by the owner only."""
        return self.root / "metadata"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog"

    @property
    def backups(self) -> Path:
        return self.root / "backups"

    @property
    def customers(self) -> Path:
        return self.root / "customers"

    @property
    def temp(self) -> Path:
        return self.root / "temp"

    @property
    def pid_file(self) -> Path:
        return self.metadata / "pid"

    @property
    def api_secret_file(self) -> Path:
        return self.metadata / "apisecret"

    @property
    def key_file(self) -> Path:
        return self.metadata / "mykeyfile"

    @property
    def packet_key_file(self) -> Path:
        """The Ed25519 key that signs packets (the identity document certifies it)."""
        return self.metadata / "packetkey"

    @property
    def main_log(self) -> Path:
        return self.logs / "main.log"

    def ensure(self) -> None:
        for folder in (self.config, self.logs, self.catalog, self.backups, self.customers, self.temp):
            folder.mkdir(parents=True, exist_ok=True)
        self.metadata.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.metadata.chmod(0o700)

    def api_secret(self, create: bool = False) -> str | None:
        """The bearer secret of the API; made (0600) on first start when ``create``."""
        path = self.api_secret_file
        if path.is_file():
            return path.read_text(encoding="ascii").strip()
        if not create:
            return None
        secret = secrets.token_urlsafe(32)
        atomic_write_text(path, secret + "\n", mode=0o600)
        return secret
