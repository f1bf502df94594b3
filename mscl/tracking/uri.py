"""Where the MLflow tracking store lives, whether it answers, and how MLflow's REST client retries.

Resolution order: an explicit URI, then ``MLFLOW_TRACKING_URI``, then ``sqlite:///mlflow.db`` in the current
working directory (MLflow 3 refuses the old ``./mlruns`` file store as a default).

Every command opens the store through :func:`connect_tracking` before any work starts: an http(s) server
that does not answer within ``tracking.connect_timeout_s`` stops the command with one line, and MLflow's
REST client gets mscl's retry defaults (:data:`HTTP_RETRY_DEFAULTS`) unless the user set them.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from collections.abc import MutableMapping
from pathlib import Path
from urllib.parse import urlparse

from mscl.config import TrackingConfig
from mscl.errors import TrackingError

DEFAULT_DB = "mlflow.db"
DEFAULT_CONNECT_TIMEOUT_S: float = TrackingConfig.model_fields["connect_timeout_s"].default

#: MLflow's REST client settings mscl sets when the environment does not. MLflow reads them on every
#: request; 429/500/502/503/504 answers, refused or dropped connections and timeouts are retried after
#: 0, 4, 8, ... 120 s (doubling, at most 120 s): 10 retries (MLflow's maximum) wait out about ten minutes
#: of outage, e.g. a server restart, instead of losing hours of training. A request may take 60 s
#: (MLflow: 120 s) before it counts as failed.
HTTP_RETRY_DEFAULTS: dict[str, str] = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "10",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}


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


def is_http(uri: str) -> bool:
    """Whether ``uri`` points at a tracking server (http or https)."""
    return urlparse(uri).scheme in ("http", "https")


def connect_tracking(explicit: str | None = None, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> str:
    """Resolve the tracking URI and make sure it can be used, before any work starts.

    For a tracking server: fail fast when it does not answer, and give MLflow's REST client mscl's
    retry defaults where the environment has none (:func:`apply_http_defaults`).

    Args:
        explicit: a URI given on the command line or in the config, else the environment's or the default.
        timeout_s: seconds the server may take to answer ``/health``.

    Returns:
        The resolved tracking URI.

    Raises:
        TrackingError: the server did not answer within ``timeout_s``.
    """
    uri = resolve_tracking_uri(explicit)
    if is_http(uri):
        check_reachable(uri, timeout_s)
        apply_http_defaults()
    return uri


def check_reachable(uri: str, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> None:
    """Fail fast when an http(s) tracking server does not answer; other schemes pass.

    Any HTTP answer (even an error status) counts as reachable; MLflow reports the rest itself.

    Raises:
        TrackingError: one line naming the URI when the server does not answer within ``timeout_s``, or
            answers something that is not HTTP.
    """
    if not is_http(uri):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc) or type(exc).__name__
        raise TrackingError(
            f"tracking server {uri} did not answer within {timeout_s:g} s ({reason}); "
            "start it or pass another --tracking-uri"
        ) from None
    except http.client.HTTPException as exc:
        raise TrackingError(
            f"tracking server {uri} did not answer HTTP ({type(exc).__name__}); is it an MLflow server?"
        ) from None


def apply_http_defaults(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Set :data:`HTTP_RETRY_DEFAULTS` in ``environ`` where it has no value of its own.

    The process environment is inherited by worker processes (``--parallel``), so they retry alike.

    Returns:
        The settings that were set (the user's own are left alone).
    """
    added = {key: value for key, value in HTTP_RETRY_DEFAULTS.items() if key not in environ}
    environ.update(added)
    return added
