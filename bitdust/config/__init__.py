"""Typed settings tree: option declarations, value types, and the per-node store."""

from bitdust.config.store import Config, OptionInfo, UnknownOptionError
from bitdust.config.types import ConfigValueError

__all__ = ["Config", "ConfigValueError", "OptionInfo", "UnknownOptionError"]
