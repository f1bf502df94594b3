"""Where the MLflow tracking store lives, and whether it answers.

Resolution order: an explicit URI, then ``MLFLOW_TRACKING_URI``, then ``sqlite:///mlflow.db`` in the current
working directory (MLflow 3 refuses the old ``./mlruns`` file store as a default).
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from mscl.errors import TrackingError

DEFAULT_DB = "mlflow.db"


def resolve_tracking_uri(explicit: str | None = None) -> str:
    """The tracking URI to use: ``explicit`` > ``MLFLOW_TRACKING_URI`` > ``sqlite:///<cwd>/mlflow.db``."""
    if explicit:
        return explicit
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / DEFAULT_DB}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for any other scheme."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///"))


def check_reachable(uri: str, timeout_s: float = 10.0) -> None:
    """Fail fast when an http(s) tracking server does not answer; other schemes pass.

    Any HTTP answer (even an error status) counts as reachable; MLflow reports the rest itself.

    Raises:
        TrackingError: one line naming the URI when the server does not answer within ``timeout_s``.
    """
    if urlparse(uri).scheme not in ("http", "https"):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"tracking server {uri} did not answer within {timeout_s:g} s ({reason}); "
            "start it or pass another --tracking-uri"
        ) from None
