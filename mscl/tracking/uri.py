"""Where the MLflow tracking store lives, whether it answers, and how MLflow's REST client retries.

Resolution order: an explicit URI, then ``MLFLOW_TRACKING_URI``, then ``sqlite:///mlflow.db`` in the current
working directory (MLflow 3 refuses the old ``./mlruns`` file store as a default).

Every command opens the store through :func:`connect_tracking` before any work starts: a URI of a scheme
MLflow has no store for, or an http(s) server that does not answer within ``tracking.connect_timeout_s``,
stops the command with one line, and MLflow's REST client gets retry settings that wait out
``tracking.retry_budget_s`` of outage per request (:func:`retry_settings`) unless the user set them.
A new ``sqlite:///`` store is created by one process at a time (:func:`create_sqlite_store`).
"""

from __future__ import annotations

import fcntl
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from mscl.config import TrackingConfig
from mscl.errors import TrackingError

DEFAULT_DB = "mlflow.db"
DEFAULT_CONNECT_TIMEOUT_S: float = TrackingConfig.model_fields["connect_timeout_s"].default
DEFAULT_RETRY_BUDGET_S: float = TrackingConfig.model_fields["retry_budget_s"].default

MAX_RETRIES_VAR = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
BACKOFF_FACTOR_VAR = "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"
TIMEOUT_VAR = "MLFLOW_HTTP_REQUEST_TIMEOUT"
MLFLOW_MAX_RETRIES = 10
"""MLflow refuses more retries per request than this."""
MAX_WAIT_S = 120.0
"""urllib3 waits at most this long between two retries."""
REQUEST_TIMEOUT_S = "60"
"""Seconds one attempt may take to connect and to be answered (MLflow: 120)."""
_set_by_mscl: dict[str, str] = {}
"""The retry variables this process set itself (a later command may set them again; the user's stay)."""


def retry_wait_s(retries: int, factor: float) -> float:
    """Seconds MLflow's REST client (urllib3) waits in all between ``retries`` retries of one request:
    0 before the first retry, then ``factor * 2**(k-1)`` before retry ``k``, each at most 120 s."""
    return sum(min(MAX_WAIT_S, factor * 2 ** (k - 1)) for k in range(2, retries + 1))


def retry_settings(budget_s: float) -> dict[str, str]:
    """MLflow's retry variables that make one request wait out about ``budget_s`` seconds of outage.

    Up to 604 s the usual factor 2 (waits of 0, 4, 8, ... 120 s) with the number of retries whose waits come
    closest to the budget (600 s: 10 retries, 604 s); beyond, MLflow's 10 retries with the whole factor
    (MLflow reads an integer) coming closest (at most 1080 s, every wait 120 s). 0 turns retries off.
    """
    if budget_s <= 0:
        return {MAX_RETRIES_VAR: "0", BACKOFF_FACTOR_VAR: "0", TIMEOUT_VAR: REQUEST_TIMEOUT_S}
    if budget_s <= retry_wait_s(MLFLOW_MAX_RETRIES, 2):
        factor = 2
        retries = min(range(1, MLFLOW_MAX_RETRIES + 1), key=lambda n: abs(retry_wait_s(n, 2) - budget_s))
    else:
        retries = MLFLOW_MAX_RETRIES
        factor = min(range(2, int(MAX_WAIT_S) + 1), key=lambda f: abs(retry_wait_s(retries, f) - budget_s))
    return {MAX_RETRIES_VAR: str(retries), BACKOFF_FACTOR_VAR: str(factor), TIMEOUT_VAR: REQUEST_TIMEOUT_S}


def configured_wait_s(environ: Mapping[str, str] = os.environ) -> float:
    """Seconds one request waits between its retries under the retry variables now in ``environ``
    (MLflow's own defaults, 7 retries and factor 2, where a variable is unset)."""
    try:
        retries = int(environ.get(MAX_RETRIES_VAR, "7"))
        factor = float(environ.get(BACKOFF_FACTOR_VAR, "2"))
    except ValueError:
        return 0.0
    return retry_wait_s(retries, factor)


#: The settings of the default budget (600 s: 10 retries, factor 2, waits of 0, 4, 8, ... 120 s = 604 s).
HTTP_RETRY_DEFAULTS: dict[str, str] = retry_settings(DEFAULT_RETRY_BUDGET_S)


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


def connect_tracking(
    explicit: str | None = None,
    timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    retry_budget_s: float = DEFAULT_RETRY_BUDGET_S,
) -> str:
    """Resolve the tracking URI and make sure it can be used, before any work starts.

    For a tracking server: fail fast when it does not answer, and give MLflow's REST client the retry
    settings of ``retry_budget_s`` where the environment has none of its own (:func:`apply_http_defaults`).

    Args:
        explicit: a URI given on the command line or in the config, else the environment's or the default.
        timeout_s: seconds the server may take to answer ``/health``.
        retry_budget_s: seconds one request may wait out an outage during the command.

    Returns:
        The resolved tracking URI.

    Raises:
        TrackingError: a scheme MLflow has no store for, or a server that did not answer.
    """
    uri = resolve_tracking_uri(explicit)
    check_scheme(uri)
    if is_http(uri):
        check_reachable(uri, timeout_s)
        apply_http_defaults(budget_s=retry_budget_s)
    return uri


def check_scheme(uri: str) -> None:
    """Refuse a URI no MLflow tracking store is registered for (``foo://bar``), naming the usual ones.

    Raises:
        TrackingError: naming the URI.
    """
    try:
        from mlflow.tracking._tracking_service.utils import _tracking_store_registry
    except ImportError:  # a future MLflow without this registry: MLflow's own error will do
        return
    try:
        _tracking_store_registry.get_store_builder(uri)
    except Exception:  # MLflow raises its UnsupportedModelRegistryStoreURIException
        scheme = urlparse(uri).scheme
        raise TrackingError(
            f"tracking URI {uri!r}: MLflow has no tracking store for the scheme {scheme!r}; "
            "use sqlite:///PATH or http(s)://HOST:PORT"
        ) from None


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
        if isinstance(reason, ConnectionRefusedError):
            raise TrackingError(
                f"tracking server {uri} refused the connection (nothing listens there); "
                "start it or pass another --tracking-uri"
            ) from None
        raise TrackingError(
            f"tracking server {uri} did not answer within {timeout_s:g} s ({reason}); "
            "start it or pass another --tracking-uri"
        ) from None
    except http.client.HTTPException as exc:
        raise TrackingError(
            f"tracking server {uri} did not answer HTTP ({type(exc).__name__}); is it an MLflow server?"
        ) from None


def apply_http_defaults(
    environ: MutableMapping[str, str] = os.environ, budget_s: float = DEFAULT_RETRY_BUDGET_S
) -> dict[str, str]:
    """Set the retry settings of ``budget_s`` (:func:`retry_settings`) in ``environ`` where the user set
    none of their own.

    The process environment is inherited by worker processes (``--parallel``), so they retry alike. A value
    set by an earlier call in this process is replaced (a second command may have another budget).

    Returns:
        The settings that were set (the user's own are left alone).
    """
    ours = _set_by_mscl if environ is os.environ else {}
    added = {
        key: value
        for key, value in retry_settings(budget_s).items()
        if key not in environ or ours.get(key) == environ[key]
    }
    environ.update(added)
    ours.update(added)
    return added


@contextmanager
def no_http_retries() -> Iterator[None]:
    """MLflow requests of the block are tried once, each attempt at most 10 s: for ending the runs of a
    command whose tracking server has just failed after its whole retry budget."""
    saved = {key: os.environ.get(key) for key in (MAX_RETRIES_VAR, TIMEOUT_VAR)}
    os.environ.update({MAX_RETRIES_VAR: "0", TIMEOUT_VAR: "10"})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def create_sqlite_store(uri: str) -> None:
    """Create (or upgrade) the tables of a ``sqlite:///`` store, one process at a time.

    Two processes creating a new store at once collide in MLflow's migrations (``table alembic_version
    already exists``); an exclusive lock on ``.<db>.lock`` beside the database serialises them, and the
    second finds the tables made. A new database file is created owner-only (0o600) whatever the umask.
    Other schemes pass.

    Raises:
        TrackingError: the database's folder is missing or not writable.
    """
    database = sqlite_path(uri)
    if database is None:
        return
    folder = database.parent
    if not folder.is_dir():
        raise TrackingError(f"{database}: the folder of the tracking database does not exist")
    try:
        lock = os.open(folder / f".{database.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise TrackingError(f"{database}: cannot create the tracking database ({exc.strerror})") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not database.exists():
            os.close(os.open(database, os.O_RDWR | os.O_CREAT, 0o600))
        from mlflow.tracking import MlflowClient

        try:
            MlflowClient(uri).search_experiments(max_results=1)  # builds the store: creates missing tables
        except Exception as exc:  # sqlalchemy and alembic errors of a file that is no MLflow database
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrackingError(f"{database}: not a usable MLflow database ({first})") from None
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)


def connect_existing(
    explicit: str | None = None,
    timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    retry_budget_s: float = DEFAULT_RETRY_BUDGET_S,
) -> str:
    """:func:`connect_tracking` for a command about runs that exist: a ``sqlite:///`` store must already
    exist (nothing is created for a mistyped path or a command run in the wrong folder).

    Raises:
        TrackingError: the store is unreachable, or its database file does not exist.
    """
    uri = connect_tracking(explicit, timeout_s, retry_budget_s)
    database = sqlite_path(uri)
    if database is not None and not database.is_file():
        raise TrackingError(f"{database}: no tracking database there; pass the study's --tracking-uri")
    return uri
