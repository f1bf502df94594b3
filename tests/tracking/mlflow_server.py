"""Test helpers: a real ``mlflow server`` on 127.0.0.1, and a proxy in front of it that fails on cue."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Literal

MLFLOW = Path(sys.executable).with_name("mlflow")
HOST = "127.0.0.1"
STARTUP_S = 30.0
STOP_S = 10.0
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass
class MlflowServer:
    """``mlflow server --workers 1`` with a SQLite backend; clients write artifacts through it.

    Args:
        root: folder of the database (``server.db``), the artifacts (``artifacts/``) and ``server.log``.
        port: the port to listen on.
    """

    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def uri(self) -> str:
        """The tracking URI of the server."""
        return f"http://{HOST}:{self.port}"

    @property
    def artifacts(self) -> Path:
        """Where the server stores the artifacts clients upload."""
        return self.root / "artifacts"

    def start(self) -> None:
        """Start the server in its own process group and wait until ``/health`` answers.

        Raises:
            RuntimeError: the server exited or did not answer within ``STARTUP_S`` (with its log's tail).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        command = [
            str(MLFLOW), "server", "--workers", "1", "--host", HOST, "--port", str(self.port),
            "--backend-store-uri", f"sqlite:///{self.root / 'server.db'}",
            "--artifacts-destination", str(self.artifacts),
        ]  # fmt: skip
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runners: starts in ~5 s
        self._log = (self.root / "server.log").open("ab")
        self.process = subprocess.Popen(
            command,
            cwd=self.root,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self.healthy():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"mlflow server did not start on {self.uri}:\n{self.log_tail()}")

    def healthy(self) -> bool:
        """Whether ``/health`` answers 200."""
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=1.0) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Terminate the server's whole process group (uvicorn workers included), then kill leftovers."""
        if self.process is None:
            return
        group = self.process.pid  # started with start_new_session: its pid is the group id
        with suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_S)
        with suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's log."""
        path = self.root / "server.log"
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
        return "\n".join(text.splitlines()[-lines:])


FaultKind = Literal["503", "drop"]


@dataclass
class Fault:
    """The next ``count`` requests ``METHOD`` whose path contains ``path_part`` fail as ``kind``.

    ``503`` answers Service Unavailable; ``drop`` closes the connection without an answer. Failed
    requests never reach the server.
    """

    method: str
    path_part: str
    count: int
    kind: FaultKind
    served: int = 0


@dataclass
class FlakyProxy:
    """An HTTP proxy on 127.0.0.1 in front of the server that injects :class:`Fault` s, first match first."""

    upstream_port: int
    faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: _ProxyServer | None = None

    @property
    def uri(self) -> str:
        """The tracking URI clients use instead of the server's."""
        assert self._server is not None, "proxy not started"
        return f"http://{HOST}:{self._server.server_port}"

    def __enter__(self) -> FlakyProxy:
        self._server = _ProxyServer(self)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def take_fault(self, method: str, path: str) -> FaultKind | None:
        """The fault a request meets, if any (counting it as served)."""
        with self._lock:
            for fault in self.faults:
                if fault.served < fault.count and fault.method == method and fault.path_part in path:
                    fault.served += 1
                    return fault.kind
        return None


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: FlakyProxy) -> None:
        super().__init__((HOST, 0), _ForwardingHandler)
        self.proxy = proxy


class _ForwardingHandler(BaseHTTPRequestHandler):
    """Forwards every request to the upstream server unless the proxy has a fault for it."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the server behind it
    server: _ProxyServer

    def handle_request(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind = self.server.proxy.take_fault(self.command, self.path)
        if kind == "drop":
            self.close_connection = True
            return
        if kind == "503":
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        connection = http.client.HTTPConnection(HOST, self.server.proxy.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            connection.request(self.command, self.path, body or None, headers)
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_request

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""
