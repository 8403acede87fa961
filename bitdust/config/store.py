"""A node's settings: typed values persisted as a tree of files under ``<home>/config/``.

``<home>/config/services/backups/enabled`` holds the text ``true``. Only values that
differ from the default are written, so a newer release's better defaults reach users
who never changed an option. Every write is atomic; a file that no longer parses (edited
by hand, say) is reported in the log and the default is used instead, so a bad file
never stops the daemon.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bitdust.config.options import OPTIONS, Option, cross_check
from bitdust.config.types import ConfigValueError
from bitdust.util.fs import atomic_write_text

log = logging.getLogger(__name__)

Listener = Callable[[str, Any, Any], None]


class UnknownOptionError(KeyError):
    """The key names no option of the settings tree."""

    def __str__(self) -> str:
        return f"unknown option {self.args[0]!r}"


@dataclass(frozen=True)
class OptionInfo:
    """What the API shows of one option."""

    key: str
    type: str
    value: str
    description: str

    def as_api(self) -> dict[str, str]:
        return {"type": self.type, "value": self.value, "key": self.key}


class Config:
    """The settings of one node home. Listeners hear every change (key, old, new)."""

    def __init__(self, folder: Path, options: tuple[Option, ...] = OPTIONS) -> None:
        self._folder = folder
        self._options = {opt.key: opt for opt in options}
        self._values: dict[str, Any] = {}
        self._listeners: list[tuple[str, Listener]] = []
        self._load()

    def _load(self) -> None:
        for key, option in self._options.items():
            path = self._path(key)
            value = option.default
            if path.is_file():
                raw = path.read_text(encoding="utf-8").strip()
                try:
                    value = option.type.parse(raw)
                except ConfigValueError as exc:
                    log.warning("config %s: ignoring %r from %s (%s); using the default", key, raw, path, exc)
            self._values[key] = value

    def _path(self, key: str) -> Path:
        return self._folder.joinpath(*key.split("/"))

    def option(self, key: str) -> Option:
        try:
            return self._options[key]
        except KeyError:
            raise UnknownOptionError(key) from None

    def keys(self) -> list[str]:
        return list(self._options)

    def __contains__(self, key: object) -> bool:
        return key in self._options

    def __iter__(self) -> Iterator[str]:
        return iter(self._options)

    def get(self, key: str) -> Any:
        self.option(key)
        return self._values[key]

    def info(self, key: str) -> OptionInfo:
        option = self.option(key)
        return OptionInfo(key, option.type.name, option.type.render(self._values[key]), option.description)

    def set(self, key: str, raw: Any) -> tuple[OptionInfo, OptionInfo]:
        """Validate and store; return (before, after). The old value stays on any error."""
        option = self.option(key)
        value = option.type.parse(raw)
        cross_check({**self._values, key: value})
        before = self.info(key)
        old = self._values[key]
        path = self._path(key)
        if value == option.default:
            path.unlink(missing_ok=True)
        else:
            atomic_write_text(path, option.type.render(value) + "\n")
        self._values[key] = value
        if old != value:
            self._notify(key, old, value)
        return before, self.info(key)

    def listen(self, prefix: str, listener: Listener) -> None:
        """Call ``listener(key, old, new)`` after any change of a key starting with ``prefix``."""
        self._listeners.append((prefix, listener))

    def unlisten(self, listener: Listener) -> None:
        self._listeners = [(p, fn) for p, fn in self._listeners if fn is not listener]

    def _notify(self, key: str, old: Any, new: Any) -> None:
        for prefix, listener in list(self._listeners):
            if key.startswith(prefix):
                listener(key, old, new)
