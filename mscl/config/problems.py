"""Pydantic validation errors as ``dotted.path: message`` lines, for one-line configuration errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError


def config_problems(exc: ValidationError) -> list[str]:
    """One ``dotted.path: message`` line per validation error."""
    return [f"{_location(err['loc'])}: {_message(err)}" for err in exc.errors()]


def _location(loc: tuple[int | str, ...]) -> str:
    path = ".".join(str(part) for part in loc)
    return path or "config"


_MESSAGES = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "extra_forbidden": "unknown key",
    "missing": "required",
    "literal_error": "must be one of {expected}",
    "too_short": "needs at least {min_length} items",
    "string_too_short": "must not be empty",
}


def _message(err: Mapping[str, Any]) -> str:
    template = _MESSAGES.get(err["type"])
    ctx = err.get("ctx") or {}
    if template:
        try:
            return template.format(**ctx)
        except KeyError:
            pass
    message = str(err["msg"])
    return message.removeprefix("Value error, ")
