"""The API's view of the settings, shared by JSON-RPC and the offline CLI."""

from __future__ import annotations

from typing import Any

from bitdust.config.store import Config, UnknownOptionError
from bitdust.config.types import ConfigValueError


def describe(config: Config, key: Any) -> list[dict[str, str]]:
    """One option, or every option below a folder key such as ``services/backups``."""
    if not isinstance(key, str):
        raise ConfigValueError(f"key must be text, not {type(key).__name__}")
    key = key.strip("/")
    if key in config:
        return [config.info(key).as_api()]
    below = [k for k in config if k.startswith(key + "/")]
    if not below:
        raise UnknownOptionError(key)
    return [config.info(k).as_api() for k in below]


def change(config: Config, key: Any, value: Any) -> list[dict[str, str]]:
    if not isinstance(key, str):
        raise ConfigValueError(f"key must be text, not {type(key).__name__}")
    before, after = config.set(key, value)
    return [{"type": after.type, "old_value": before.value, "value": after.value, "key": key}]


def listing(config: Config, sort: bool = False) -> list[dict[str, str]]:
    keys = sorted(config.keys()) if sort else config.keys()
    return [config.info(k).as_api() for k in keys]
