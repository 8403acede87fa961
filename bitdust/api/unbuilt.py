"""API calls of the spec whose subsystem is not in this build yet.

Each is registered with the spec's exact parameters (so a wrong call is still -32602)
and answers ERROR naming the service it waits for; never made-up data. An entry leaves
this table when its subsystem is built and the real method lands in ``methods.py``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from bitdust.api.results import error

_REQUIRED = inspect.Parameter.empty

UNBUILT: tuple[tuple[str, tuple[tuple[str, Any], ...], str], ...] = (
    ("backups_update", (), "service_backups"),
    ("backups_list", (), "service_backup_db"),
    ("backups_id_list", (), "service_backup_db"),
    ("backup_start_id", (("pathID", _REQUIRED),), "service_backups"),
    ("backup_start_path", (("path", _REQUIRED), ("bind_local_path", True)), "service_backups"),
    ("backup_map_path", (("path", _REQUIRED),), "service_backup_db"),
    ("backup_dir_add", (("dirpath", _REQUIRED),), "service_backup_db"),
    ("backup_file_add", (("filepath", _REQUIRED),), "service_backup_db"),
    ("backup_tree_add", (("dirpath", _REQUIRED),), "service_backup_db"),
    ("backup_delete_local", (("backupID", _REQUIRED),), "service_backups"),
    ("backup_delete_id", (("pathID_or_backupID", _REQUIRED),), "service_backups"),
    ("backup_delete_path", (("localPath", _REQUIRED),), "service_backups"),
    ("backups_queue", (), "service_backups"),
    ("backups_running", (), "service_backups"),
    ("backup_cancel_pending", (("path_id", _REQUIRED),), "service_backups"),
    ("backup_abort_running", (("backup_id", _REQUIRED),), "service_backups"),
    ("restore_single", (("pathID_or_backupID_or_localPath", _REQUIRED), ("destinationPath", None)),
     "service_restores"),
    ("restores_running", (), "service_restores"),
    ("restore_abort", (("backup_id", _REQUIRED),), "service_restores"),
    ("suppliers_list", (), "service_customer"),
    ("supplier_replace", (("index_or_idurl", _REQUIRED),), "service_employer"),
    ("supplier_change", (("index_or_idurl", _REQUIRED), ("new_idurl", _REQUIRED)), "service_employer"),
    ("suppliers_ping", (), "service_customer"),
    ("customers_list", (), "service_supplier"),
    ("customer_reject", (("idurl", _REQUIRED),), "service_supplier"),
    ("customers_ping", (), "service_supplier"),
    ("space_donated", (), "service_supplier"),
    ("space_consumed", (), "service_customer"),
    ("ping", (("idurl", _REQUIRED), ("timeout", 10)), "service_p2p_hookups"),
    ("send_message", (("recipient", _REQUIRED), ("message_body", _REQUIRED)), "service_private_messages"),
    ("receive_one_message", (), "service_private_messages"),
    ("broadcast_send_message", (("payload", _REQUIRED),), "service_broadcasting"),
)


def unavailable_message(method: str, service: str, installed: bool) -> str:
    message = f"{method} is not available: {service} is not running"
    if not installed:
        message += "; it is not installed in this build"
    return message


def make_unbuilt(method: str, params: tuple[tuple[str, Any], ...], service: str,
                 is_installed: Callable[[str], bool]) -> Callable[..., dict[str, Any]]:
    """A callable with the spec's signature that answers ERROR naming ``service``."""

    def call(*_args: Any, **_kwargs: Any) -> dict[str, Any]:
        return error(unavailable_message(method, service, is_installed(service)))

    call.__name__ = method
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
         for name, default in params]
    )
    return call
