"""``bitdust identity create NAME`` and ``bitdust identity show`` (``backup``/``restore``:
:mod:`bitdust.identity.key_backup_cli`).

``create`` goes through the daemon's API (``identity_create``) when the daemon runs
and its ``service_identity_propagate`` is ON, so the running node switches to the new
identity at once. Otherwise it works offline: load or make the key, build the document,
POST it to every known server with blocking urllib calls (the CLI has no reactor), and
save it only when every server took it. A daemon that runs without the service is told
to restart to pick the new identity up: it reads it at service start.
"""

from __future__ import annotations

import argparse
from typing import Any

from bitdust.home import Home

# The identity modules (RSA keys, XML documents, urllib) are imported by the commands
# that use them: every `bitdust` command builds the parser, `bitdust start` included.


def cmd_identity(home: Home, args: argparse.Namespace) -> int:
    from bitdust.cli import EXIT_OK, EXIT_USAGE, CliError

    if args.action in ("backup", "restore"):
        from bitdust.identity.key_backup_cli import cmd_key_backup, cmd_key_restore

        return (cmd_key_backup if args.action == "backup" else cmd_key_restore)(home, args)
    if args.action == "create":
        from bitdust.identity.idurl import valid_name

        if not args.name:
            raise CliError("usage: bitdust identity create NAME", EXIT_USAGE)
        if not valid_name(args.name):
            raise CliError(f"bad name {args.name!r}: use 3-20 characters of a-z, 0-9, '-' and '_'", EXIT_USAGE)
        print(_create(home, args.name))
        return EXIT_OK
    info = _show(home)
    if args.xml:
        print(info["xml"], end="")
    else:
        for key in ("idurl", "name", "revision", "date", "key_id", "key_bits", "packet_key_id"):
            print(f"{key + ':':<10} {info[key]}")
        print("sources:   " + ", ".join(info["sources"]))
        print("contacts:  " + ", ".join(info["contacts"]))
    return EXIT_OK


def _create(home: Home, name: str) -> str:
    from bitdust.cli import CliError, call_api
    from bitdust.config import Config
    from bitdust.identity.document import IdentityError
    from bitdust.identity.idurl import IdurlError
    from bitdust.identity.my_id import (
        build_identity,
        known_servers,
        load_current_identity,
        load_or_create_key,
        load_or_create_packet_key,
        my_contacts,
        post_sync,
        save_my_identity,
    )

    if _daemon_serves_identity(home):
        answer, _code = call_api(home, "identity_create", [name], {})
        if answer.get("status") != "OK":
            raise CliError("identity create failed: " + "; ".join(answer.get("errors", [])))
        return str(answer["result"]["idurl"])
    config = Config(home.config)
    try:
        servers = known_servers(config)
        key = load_or_create_key(home, config.get("personal/private-key-size"))
        packet_key = load_or_create_packet_key(home)
        previous, _changed = load_current_identity(home, key, packet_key)
        identity = build_identity(key, name, servers, my_contacts(config), previous=previous, packet_key=packet_key)
    except (IdentityError, IdurlError) as exc:
        raise CliError(f"identity create failed: {exc}") from None
    results = post_sync(identity)
    refused = [f"  {idurl}: {reason}" for idurl, reason in results.items() if reason != "OK"]
    if refused:
        raise CliError("identity create failed, not saved; the servers said:\n" + "\n".join(refused))
    save_my_identity(home, identity)
    if _running(home):
        print("the daemon is running without service_identity_propagate: "
              "run `bitdust restart` to use the new identity")
    return identity.idurl


def _show(home: Home) -> dict[str, Any]:
    from bitdust.cli import CliError
    from bitdust.identity.document import IdentityError
    from bitdust.identity.my_id import describe, load_my_identity

    try:
        identity = load_my_identity(home)
    except IdentityError as exc:
        raise CliError(f"the saved identity is damaged: {exc}") from None
    if identity is None:
        raise CliError(f"no identity in {home.root}: run `bitdust identity create NAME`")
    return describe(identity)


def _running(home: Home) -> bool:
    from bitdust.daemon import running_pid

    return running_pid(home) is not None


def _daemon_serves_identity(home: Home) -> bool:
    from bitdust.cli import EXIT_OK, call_api

    if not _running(home):
        return False
    answer, code = call_api(home, "service_info", ["service_identity_propagate"], {})
    return code == EXIT_OK and answer["result"][0]["state"] == "ON"


def add_parser(sub: Any) -> None:
    """Register ``identity`` on the CLI's subparsers."""
    parser = sub.add_parser("identity", help="this node's identity: identity create NAME | show | "
                                             "backup FILE | restore FILE")
    parser.add_argument("action", choices=("create", "show", "backup", "restore"))
    parser.add_argument("name", nargs="?", help="for create: 3-20 characters of a-z, 0-9, '-' and '_'; "
                                               "for backup and restore: the key backup FILE")
    parser.add_argument("--xml", action="store_true", help="show: print the signed XML document")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--passphrase-file", metavar="F", help="backup/restore: the passphrase is F's first line")
    secret.add_argument("--passphrase-env", metavar="VAR", help="backup/restore: the passphrase is in $VAR")
    secret.add_argument("--passphrase-prompt", action="store_true", help="backup/restore: ask on the terminal")
    parser.set_defaults(func=cmd_identity)
