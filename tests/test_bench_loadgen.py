"""The benchmark's load generator against a real HTTP/1.1 server on loopback."""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.bench.loadgen import encode_post, post_all


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers.get("X-Test"), body))
        answer = b'{"ok": true}' if body != b"fail" else b"no"
        self.send_response(200 if body != b"fail" else 400)
        self.send_header("Content-Length", str(len(answer)))
        if body == b"close":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Recorder.received = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_every_body_is_posted_once_with_its_headers_over_kept_alive_connections(server):
    bodies = [(f"body-{n}".encode(), {"X-Test": str(n)}) for n in range(200)] + [b"close", b"fail", b"after"]

    result = post_all(f"{server}/hook/abc?x=1", bodies, {"X-Test": "shared"}, threads=3)

    assert result.statuses == {200: 202, 400: 1} and result.ok == 202 and len(result.latencies) == 203
    received = sorted(Recorder.received)
    assert {path for path, _, _ in received} == {"/hook/abc?x=1"}
    assert sorted(body for _, _, body in received) == sorted(b if isinstance(b, bytes) else b[0] for b in bodies)
    assert {header for _, header, body in received if body.startswith(b"body-")} == {str(n) for n in range(200)}
    assert {header for _, header, body in received if not body.startswith(b"body-")} == {"shared"}


def test_a_refused_connection_counts_as_status_zero():
    result = post_all("http://127.0.0.1:9/nothing", [b"a", b"b"], threads=1, timeout=2)
    assert result.statuses == {0: 2} and result.ok == 0


def test_requests_are_encoded_with_their_length():
    assert encode_post("http://127.0.0.1:8000/p?q=1", b"{}", {"Content-Type": "application/json"}) == (
        b"POST /p?q=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Length: 2\r\n"
        b"Content-Type: application/json\r\n\r\n{}")
