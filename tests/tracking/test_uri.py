"""Tracking URI resolution and the bounded reachability check."""

from __future__ import annotations

import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from mscl.config import load_config
from mscl.errors import TrackingError
from mscl.tracking.uri import (
    BACKOFF_FACTOR_VAR,
    DEFAULT_RETRY_BUDGET_S,
    HTTP_RETRY_DEFAULTS,
    MAX_RETRIES_VAR,
    apply_http_defaults,
    check_reachable,
    configured_wait_s,
    connect_tracking,
    resolve_tracking_uri,
    retry_settings,
    retry_wait_s,
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
    with pytest.raises(TrackingError, match="refused the connection"):  # at once, not after a timeout
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
    with pytest.raises(TrackingError, match="refused the connection"):
        connect_tracking(f"http://127.0.0.1:{port}", timeout_s=1.0)


def test_the_retry_budget_is_a_setting_whose_default_waits_about_ten_minutes() -> None:
    """docs/tracking.md: one request waits out about ten minutes of outage (0 + 4 + 8 + ... = 604 s)."""
    assert load_config("tiny").tracking.retry_budget_s == DEFAULT_RETRY_BUDGET_S == 600
    assert retry_settings(600) == HTTP_RETRY_DEFAULTS
    assert (HTTP_RETRY_DEFAULTS[MAX_RETRIES_VAR], HTTP_RETRY_DEFAULTS[BACKOFF_FACTOR_VAR]) == ("10", "2")
    assert retry_wait_s(10, 2) == 604
    assert retry_settings(0)[MAX_RETRIES_VAR] == "0"
    for budget in (4, 30, 120, 300, 900, 1080):
        settings = retry_settings(budget)
        waited = retry_wait_s(int(settings[MAX_RETRIES_VAR]), int(settings[BACKOFF_FACTOR_VAR]))
        assert int(settings[MAX_RETRIES_VAR]) <= 10  # MLflow refuses more
        assert budget / 2 <= waited <= budget * 1.5, (budget, settings)


def test_each_command_applies_its_own_budget_but_never_the_users(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in HTTP_RETRY_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    apply_http_defaults(budget_s=600)
    assert configured_wait_s() == 604
    apply_http_defaults(budget_s=4)  # a later command of this process, another budget: mscl's own values go
    assert configured_wait_s() == 4
    monkeypatch.setenv(MAX_RETRIES_VAR, "1")  # the user's
    apply_http_defaults(budget_s=600)
    assert os.environ[MAX_RETRIES_VAR] == "1"


CREATE_AT_ONCE = """
import sys, time
from pathlib import Path
from mscl.tracking.uri import create_sqlite_store
uri, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.01)
for attempt in range(int(sys.argv[4])):
    create_sqlite_store(f"{uri}{attempt}.db")
"""


@pytest.mark.slow
def test_two_processes_creating_one_new_sqlite_store_do_not_collide(tmp_path: Path) -> None:
    """Both used to run MLflow's migrations at once: ``table _alembic_tmp_tags already exists``."""
    import subprocess
    import sys

    attempts = 3
    uri, go = f"sqlite:///{tmp_path}/store", tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE_AT_ONCE, uri, str(tmp_path / f"ready{i}"), str(go), str(attempts)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)) and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()  # both imported everything: they start creating the same stores at the same moment
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    for attempt in range(attempts):
        assert (tmp_path / f"store{attempt}.db").stat().st_mode & 0o077 == 0  # created owner-only
