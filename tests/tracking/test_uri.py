"""Tracking URI resolution and the bounded reachability check."""

from __future__ import annotations

import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from mscl.errors import TrackingError
from mscl.tracking.uri import (
    HTTP_RETRY_DEFAULTS,
    apply_http_defaults,
    check_reachable,
    connect_tracking,
    resolve_tracking_uri,
    sqlite_path,
)


def test_resolution_order(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_tracking_uri() == "http://127.0.0.1:5000"
    assert resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_sqlite_path() -> None:
    assert sqlite_path("sqlite:////abs/m.db") == Path("/abs/m.db")
    assert sqlite_path("sqlite:///rel.db") == Path("rel.db")
    assert sqlite_path("http://host") is None


def test_silent_server_fails_within_the_timeout() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(TrackingError, match=f"tracking server {uri} did not answer within 0.3 s"):
            check_reachable(uri, timeout_s=0.3)
        assert time.monotonic() - started < 2.0


def test_closed_port_fails_and_answering_server_passes() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TrackingError, match="did not answer"):
        check_reachable(f"http://127.0.0.1:{port}", timeout_s=1.0)

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        check_reachable(f"http://127.0.0.1:{server.server_port}/", timeout_s=2.0)
    finally:
        server.shutdown()
        server.server_close()
    check_reachable("sqlite:///nowhere.db", timeout_s=0.1)


def test_a_server_answering_something_else_than_http_is_a_clear_error() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"

        def banner() -> None:  # like an SSH server on the port
            connection, _ = listener.accept()
            with connection:
                connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

        thread = threading.Thread(target=banner, daemon=True)
        thread.start()
        with pytest.raises(TrackingError, match=f"tracking server {uri} did not answer HTTP"):
            check_reachable(uri, timeout_s=2.0)
        thread.join(timeout=2.0)


def test_http_defaults_fill_only_what_the_user_left_unset() -> None:
    environ = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "300", "PATH": "/bin"}
    added = apply_http_defaults(environ)
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in added
    assert environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "300"
    assert added == {k: v for k, v in HTTP_RETRY_DEFAULTS.items() if k != "MLFLOW_HTTP_REQUEST_TIMEOUT"}
    assert environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "10"
    assert apply_http_defaults(environ) == {}


def test_mlflow_reads_the_defaults_and_accepts_them(monkeypatch) -> None:
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )
    from mlflow.utils.rest_utils import _validate_backoff_factor, _validate_max_retries

    for key in HTTP_RETRY_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    apply_http_defaults()
    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 10
    assert MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get() == 2
    assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 60
    _validate_max_retries(MLFLOW_HTTP_REQUEST_MAX_RETRIES.get())  # within MLflow's limits
    _validate_backoff_factor(MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get())


def test_connect_tracking_sets_defaults_for_servers_only(monkeypatch, tmp_path) -> None:
    for key in HTTP_RETRY_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    assert connect_tracking(f"sqlite:///{tmp_path}/m.db") == f"sqlite:///{tmp_path}/m.db"
    assert not any(key in os.environ for key in HTTP_RETRY_DEFAULTS)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TrackingError, match="did not answer"):
        connect_tracking(f"http://127.0.0.1:{port}", timeout_s=1.0)
