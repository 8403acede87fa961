"""The two result shapes of the API: ``{'status': 'OK', 'result': ...}`` and
``{'status': 'ERROR', 'errors': [...]}``, and how exceptions become the second."""

from __future__ import annotations

import logging
from typing import Any

from twisted.python.failure import Failure

from bitdust.config import ConfigValueError, UnknownOptionError
from bitdust.services.service import ServiceError, ServiceUnavailable

log = logging.getLogger(__name__)

EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    ConfigValueError,
    UnknownOptionError,
    ServiceError,
    ServiceUnavailable,
)
"""Errors whose message is meant for the user: no traceback is logged for them."""


class ApiError(Exception):
    """Raise inside an API method to answer ERROR with this message."""


def ok(result: Any, **extra: Any) -> dict[str, Any]:
    return {"status": "OK", "result": result, **extra}


def error(*messages: str) -> dict[str, Any]:
    return {"status": "ERROR", "errors": list(messages)}


def error_from_exception(method: str, failure: Failure) -> dict[str, Any]:
    exc = failure.value
    if isinstance(exc, (ApiError, *EXPECTED_ERRORS)):
        return error(str(exc))
    log.error("API %s failed:\n%s", method, failure.getTraceback())
    return error(f"{method} failed: {type(exc).__name__}: {exc}")
