"""A scriptable loopback webhook receiver (127.0.0.1, random port) for the delivery tests and benchmark."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """``script(n, request)`` returns (status, headers) for the n-th request (1-based); default 200."""

    script: Callable[[int, Received], tuple[int, dict[str, str]]] | None = None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Receiver:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                rec = Received(self.path, {k: v for k, v in self.headers.items()}, body, time.monotonic())
                with outer.lock:
                    outer.received.append(rec)
                    n = len(outer.received)
                status, headers = outer.script(n, rec) if outer.script else (200, {})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default backlog (5) drops concurrent connects: 1 s SYN retries

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Received]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if len(self.received) >= n:
                    return list(self.received)
            time.sleep(0.01)
        raise AssertionError(f"expected {n} requests, got {len(self.received)}")
