"""Option types of the settings tree.

Each type turns user text (from the CLI, JSON-RPC or a config file) into a typed value
and back into canonical text. The type names are the ones the API reports
(``'positive integer'``, ``'disk space'``, ...), as in the spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bitdust.util.units import format_size, parse_size


class ConfigValueError(ValueError):
    """A value does not fit its option's type; the message says why, for the user."""


@dataclass(frozen=True)
class OptionType:
    """Base: subclasses implement :meth:`parse` and :meth:`render`."""

    name: str

    def parse(self, raw: Any) -> Any:
        raise NotImplementedError

    def render(self, value: Any) -> str:
        return str(value)


@dataclass(frozen=True)
class BooleanType(OptionType):
    name: str = "boolean"

    def parse(self, raw: Any) -> bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ConfigValueError(f"{raw!r} is not a boolean (use true or false)")

    def render(self, value: Any) -> str:
        return "true" if value else "false"


@dataclass(frozen=True)
class IntegerType(OptionType):
    """Whole numbers within [minimum, maximum]; 'positive integer' accepts 0 and up,
    as the original's ``logs/debug-level`` 0 shows."""

    name: str = "integer"
    minimum: int | None = None
    maximum: int | None = None

    def parse(self, raw: Any) -> int:
        if isinstance(raw, bool):
            raise ConfigValueError(f"{raw!r} is not a whole number")
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ConfigValueError(f"{raw!r} is not a whole number") from None
        if self.minimum is not None and value < self.minimum:
            raise ConfigValueError(f"{value} is below the minimum {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigValueError(f"{value} is above the maximum {self.maximum}")
        return value


@dataclass(frozen=True)
class FloatType(OptionType):
    name: str = "float"
    minimum: float | None = None

    def parse(self, raw: Any) -> float:
        if isinstance(raw, bool):
            raise ConfigValueError(f"{raw!r} is not a number")
        try:
            value = float(str(raw).strip())
        except ValueError:
            raise ConfigValueError(f"{raw!r} is not a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigValueError(f"{raw!r} is not a finite number")
        if self.minimum is not None and value < self.minimum:
            raise ConfigValueError(f"{value} is below the minimum {self.minimum}")
        return value

    def render(self, value: Any) -> str:
        return repr(float(value))


@dataclass(frozen=True)
class StringType(OptionType):
    name: str = "string"
    max_length: int = 4096

    def parse(self, raw: Any) -> str:
        if not isinstance(raw, str | int | float) or isinstance(raw, bool):
            raise ConfigValueError(f"{raw!r} is not a text value")
        text = str(raw)
        if "\x00" in text or "\n" in text:
            raise ConfigValueError("a text value cannot contain NUL or line breaks")
        if len(text) > self.max_length:
            raise ConfigValueError(f"text longer than {self.max_length} characters")
        return text


@dataclass(frozen=True)
class TextListType(OptionType):
    """A list of short strings, written as comma-separated text (``'a:1, b:2'``)."""

    name: str = "text list"

    def parse(self, raw: Any) -> tuple[str, ...]:
        items: list[Any]
        if isinstance(raw, list | tuple):
            items = list(raw)
        elif isinstance(raw, str):
            items = raw.split(",")
        else:
            raise ConfigValueError(f"{raw!r} is not a comma-separated list")
        result = []
        for item in items:
            text = StringType().parse(item).strip()
            if "," in text:
                raise ConfigValueError(f"list item {text!r} cannot contain a comma")
            if text:
                result.append(text)
        return tuple(result)

    def render(self, value: Any) -> str:
        return ",".join(value)


@dataclass(frozen=True)
class PortType(OptionType):
    name: str = "port number"

    def parse(self, raw: Any) -> int:
        return IntegerType(name=self.name, minimum=1, maximum=65535).parse(raw)


@dataclass(frozen=True)
class DiskSpaceType(OptionType):
    """Sizes such as ``'128 MB'``; stored as bytes, shown in the largest fitting unit."""

    name: str = "disk space"
    minimum: int = 0

    def parse(self, raw: Any) -> int:
        if isinstance(raw, bool):
            raise ConfigValueError(f"{raw!r} is not a disk space like '128 MB'")
        if isinstance(raw, int):
            value = raw
        else:
            try:
                value = parse_size(str(raw))
            except ValueError as exc:
                raise ConfigValueError(str(exc)) from None
        if value < self.minimum:
            raise ConfigValueError(f"{format_size(value)} is below the minimum {format_size(self.minimum)}")
        return value

    def render(self, value: Any) -> str:
        """The short form ('128 MB') when it is exact, else plain bytes: a saved value
        must read back as the very same number."""
        text = format_size(value)
        return text if parse_size(text) == value else f"{int(value)} bytes"


@dataclass(frozen=True)
class ComboType(OptionType):
    """One of a fixed set of choices, e.g. suppliers number 2/4/7/13/18/26/64."""

    name: str = "combo"
    choices: tuple[str, ...] = ()
    integer: bool = False

    def parse(self, raw: Any) -> Any:
        text = str(raw).strip()
        if isinstance(raw, bool) or text not in self.choices:
            raise ConfigValueError(f"{raw!r} is not one of: {', '.join(self.choices)}")
        return int(text) if self.integer else text

    def render(self, value: Any) -> str:
        return str(value)


BOOLEAN = BooleanType()
INTEGER = IntegerType()
POSITIVE_INTEGER = IntegerType(name="positive integer", minimum=0)
FLOAT = FloatType()
POSITIVE_FLOAT = FloatType(name="positive float", minimum=0.0)
STRING = StringType()
TEXT_LIST = TextListType()
PORT = PortType()
DISK_SPACE = DiskSpaceType()
