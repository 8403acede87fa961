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
