"""``bitdust identity backup FILE`` and ``bitdust identity restore FILE``: disaster recovery.

``restore`` is meant for a fresh home (a new machine, a wiped disk): it installs the
keys, the identity and the supplier list, and asks the daemon to get the catalog back
from the suppliers on its next start (``<home>/catalog/recover-from-suppliers``, acted on
by :mod:`bitdust.storage.backups.recovery`). It refuses a home that holds another key,
and a running daemon (it would keep using the keys it loaded).

**How a fresh node finds its suppliers.** The supplier list (position -> idurl) is in the
key backup file and becomes ``<home>/customer/suppliers.json``, so the customer asks the
very same suppliers for the very same positions, and fire_hire sees no empty position to
hire into. A list that went stale after the file was written still works while at most
N/2 positions changed hands: a position whose old supplier dropped us is re-hired and
rebuilt from the others, as after any supplier loss. So: run ``identity backup`` again
after suppliers were replaced (``bitdust files`` shows redundancy). A DHT record of the
supplier list was considered and left out: DHT records live at most 24 h unless their
publisher re-publishes them, and after a disaster the publisher is the machine that is gone.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bitdust.crypto.keys import BadKeyError, PrivateKey
from bitdust.crypto.packet_keys import PacketSigningKey
from bitdust.home import Home
from bitdust.identity.document import IdentityError
from bitdust.identity.key_backup import KeyBackup, KeyBackupError, dump, is_encrypted, load
from bitdust.identity.my_id import load_my_identity, save_my_identity
from bitdust.util.fs import atomic_write

RECOVERY_MARKER = "recover-from-suppliers"
MAX_PASSPHRASE_BYTES = 4096


def suppliers_file(home: Home) -> Path:
    return home.root / "customer" / "suppliers.json"


def recovery_marker(home: Home) -> Path:
    return home.catalog / RECOVERY_MARKER


def read_passphrase(args: argparse.Namespace, confirm: bool) -> bytes | None:
    """From ``--passphrase-file`` (its first line) or ``--passphrase-env``; None when neither.

    Never from the command line itself: it would show in ``ps`` and shell history.
    ``--passphrase-prompt`` asks on the terminal (twice when writing).
    """
    from bitdust.cli import EXIT_USAGE, CliError

    text: str | None = None
    if args.passphrase_file:
        try:
            with open(args.passphrase_file, encoding="utf-8") as source:
                text = source.readline(MAX_PASSPHRASE_BYTES).rstrip("\r\n")
        except OSError as exc:
            raise CliError(f"cannot read the passphrase file: {exc.strerror} ({args.passphrase_file})",
                           EXIT_USAGE) from None
    elif args.passphrase_env:
        text = os.environ.get(args.passphrase_env)
        if text is None:
            raise CliError(f"the environment variable {args.passphrase_env} is not set", EXIT_USAGE)
    elif args.passphrase_prompt:
        text = getpass.getpass("passphrase: ")
        if confirm and getpass.getpass("passphrase again: ") != text:
            raise CliError("the two passphrases differ", EXIT_USAGE)
    if text is None:
        return None
    if not text:
        raise CliError("the passphrase is empty", EXIT_USAGE)
    return text.encode("utf-8")


def _saved_suppliers(home: Home) -> dict[str, Any] | None:
    """The customer's supplier list as the key backup keeps it; None when there is none."""
    try:
        data = json.loads(suppliers_file(home).read_text("utf-8"))
        rows = sorted(data["suppliers"], key=lambda row: int(row["position"]))
        positions = [str(row.get("idurl") or "") for row in rows]
        ecc_map = str(data.get("ecc_map") or f"ecc/{len(positions)}x{len(positions)}")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"warning: {suppliers_file(home)} is unreadable ({exc}); the backup has no supplier list",
              file=sys.stderr)
        return None
    return {"ecc_map": ecc_map, "positions": positions} if any(positions) else None


def cmd_key_backup(home: Home, args: argparse.Namespace) -> int:
    from bitdust.cli import EXIT_OK, EXIT_USAGE, CliError

    if not args.name:
        raise CliError("usage: bitdust identity backup FILE", EXIT_USAGE)
    try:
        key = PrivateKey.load(home.key_file)
        packet_key = PacketSigningKey.load(home.packet_key_file)
        identity = load_my_identity(home)
    except FileNotFoundError:
        raise CliError(f"no keys in {home.root}: run `bitdust identity create NAME` first") from None
    except (BadKeyError, IdentityError) as exc:
        raise CliError(f"the keys or identity in {home.metadata} cannot be read: {exc}") from None
    if identity is None:
        raise CliError(f"no identity in {home.root}: run `bitdust identity create NAME` first")
    passphrase = read_passphrase(args, confirm=True)
    suppliers = _saved_suppliers(home)
    try:
        data = dump(KeyBackup(key, packet_key, identity, suppliers), passphrase)
    except KeyBackupError as exc:
        raise CliError(f"identity backup failed: {exc}") from None
    target = Path(args.name).expanduser()
    try:
        atomic_write(target, data, mode=0o600)
    except OSError as exc:
        raise CliError(f"cannot write {target}: {exc.strerror}") from None
    count = len([p for p in (suppliers or {}).get("positions", []) if p])
    print(f"key backup of {identity.idurl} written to {target} "
          f"({'protected by a passphrase' if passphrase else 'NOT encrypted: keep it safe'}; {count} suppliers)")
    return EXIT_OK


def cmd_key_restore(home: Home, args: argparse.Namespace) -> int:
    from bitdust.cli import EXIT_OK, EXIT_USAGE, CliError
    from bitdust.daemon import running_pid

    if not args.name:
        raise CliError("usage: bitdust identity restore FILE", EXIT_USAGE)
    try:
        data = Path(args.name).expanduser().read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.name}: {exc.strerror}", EXIT_USAGE) from None
    passphrase = read_passphrase(args, confirm=False)
    if passphrase is None and is_encrypted(data) and sys.stdin.isatty():
        passphrase = getpass.getpass("passphrase: ").encode("utf-8")
    try:
        backup = load(data, passphrase)
    except KeyBackupError as exc:
        raise CliError(f"identity restore failed: {exc}") from None
    if running_pid(home) is not None:
        raise CliError(f"BitDust is running in {home.root}: stop it first (`bitdust stop`)")
    _refuse_other_node(home, backup)
    install(home, backup)
    print(f"identity {backup.idurl} restored in {home.root}; run `bitdust start`: the node reconnects to its "
          f"suppliers and gets its catalog back from them")
    return EXIT_OK


def _refuse_other_node(home: Home, backup: KeyBackup) -> None:
    from bitdust.cli import CliError

    if not home.key_file.exists():
        return
    try:
        current = PrivateKey.load(home.key_file)
    except BadKeyError:
        raise CliError(f"{home.key_file} exists but cannot be read; restore into a fresh home") from None
    if current.public_key() != backup.key.public_key():
        raise CliError(f"{home.root} already holds another node's key ({home.key_file}); restore into a fresh home "
                       "(--home DIR) so no identity is lost")


def install(home: Home, backup: KeyBackup) -> None:
    """Keys, identity, supplier list, and the request to recover the catalog."""
    home.ensure()
    backup.key.save(home.key_file)
    backup.packet_key.save(home.packet_key_file)
    try:
        current = load_my_identity(home)
    except IdentityError:
        current = None  # damaged: the backup's copy replaces it
    if current is None or current.public_key != backup.key.public_key() or current.revision < backup.identity.revision:
        save_my_identity(home, backup.identity)
    if backup.suppliers and _saved_suppliers(home) is None:
        _install_suppliers(home, backup.suppliers)
    if not (home.catalog / "catalog.json").exists():
        atomic_write(recovery_marker(home), json.dumps({"requested": time.time(), "idurl": backup.idurl}).encode(),
                     mode=0o600)


def _install_suppliers(home: Home, suppliers: dict[str, Any]) -> None:
    from bitdust.config import Config
    from bitdust.storage.customer.suppliers import SupplierList, SupplierListError

    positions = suppliers["positions"]
    try:
        listing = SupplierList(suppliers_file(home), len(positions))
        for position, idurl in enumerate(positions):
            if idurl:
                listing.assign(position, idurl, None)
    except SupplierListError as exc:
        print(f"warning: the supplier list in the key backup is unusable ({exc}); new suppliers will be hired",
              file=sys.stderr)
        return
    # the customer resizes its list to this option on start: it must match the list
    Config(home.config).set("services/customer/suppliers-number", len(positions))
