"""Shared machinery of the loopback fake servers used by tests and benchmarks.

A fake is a real HTTP/1.1 server (stdlib ``ThreadingHTTPServer``) bound to
127.0.0.1 and served from a background thread. Subclasses of ``FakeServer``
declare their API as ``Route`` objects; this module supplies routing, body
reading, JSON helpers, fault injection, the request log, the statistics and the
``/_fake/...`` inspection endpoints that also work when the fake runs as a
separate process.
"""

import argparse
import email.utils
import json
import logging
import re
import signal
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

logger = logging.getLogger(__name__)

CONTROL_PREFIX = "/_fake/"
CONTROL_BODY_LIMIT = 512 * 1024 * 1024
STREAM_CHUNK_BYTES = 64 * 1024
UNMATCHED_ROUTE = "<unmatched>"
MAX_HEADERS = 100
MAX_HEADER_LINE = 65536


class InvalidJSON(ValueError):
    """The request body is not valid JSON."""


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(payload):
    """Compact UTF-8 JSON encoding used for every response body."""
    return _ENCODER.encode(payload).encode("utf-8")


def json_size(value):
    """Size in bytes of ``value`` encoded as compact UTF-8 JSON."""
    return len(dumps(value))


def utf8_size(value):
    """Byte length of a string in UTF-8; other values are measured as JSON."""
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    return json_size(value)


_date_header = (0, "")


def http_date():
    """RFC 7231 date of the current second (formatted once per second)."""
    global _date_header
    now = int(time.time())
    if _date_header[0] != now:
        _date_header = (now, email.utils.formatdate(now, usegmt=True))
    return _date_header[1]


class Request:
    """One parsed HTTP request, handed to route handlers.

    ``size`` is the body length announced or read; when it exceeded the fake's
    limit the body was discarded and ``too_large`` is True.
    """

    __slots__ = ("method", "path", "query", "headers", "body", "size", "too_large", "received_at", "_json")

    def __init__(self, method, path, query, headers, body, size, too_large):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.size = size
        self.too_large = too_large
        self.received_at = time.monotonic()
        self._json = None

    def json(self):
        """The body decoded as JSON (parsed once); an empty body gives None."""
        if self._json is None:
            try:
                self._json = (json.loads(self.body) if self.body else None,)
            except (ValueError, UnicodeDecodeError) as exc:
                self._json = InvalidJSON(str(exc))
        if isinstance(self._json, InvalidJSON):
            raise self._json
        return self._json[0]

    def query_param(self, name, default=None):
        """First value of a query-string parameter."""
        values = parse_qs(self.query).get(name)
        return values[0] if values else default


@dataclass
class Response:
    """What a handler answers: a complete body, or a ``stream`` of byte chunks sent chunked."""

    status: int
    body: bytes = b""
    headers: tuple = ()
    stream: object = None
    content_type: str = "application/json"


def json_response(status, payload, headers=()):
    """A JSON response with ``payload`` as body."""
    return Response(status, dumps(payload), tuple(headers))


class Route:
    """An endpoint: method, path template with ``{name}`` segments, handler method name."""

    __slots__ = ("method", "template", "handler", "regex")

    def __init__(self, method, template, handler):
        self.method = method
        self.template = template
        self.handler = handler
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        self.regex = re.compile(pattern)

    def match(self, path):
        """URL-decoded path parameters when ``path`` fits the template, else None."""
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in found.groupdict().items()}


@dataclass
class Fault:
    """An injected failure: answer ``status`` to matching requests while active."""

    status: int
    remaining: object = None
    until: object = None
    retry_after: object = None
    path_prefix: object = None

    def active(self, now):
        """Whether the fault still applies at monotonic time ``now``."""
        if self.until is not None and now >= self.until:
            return False
        return self.remaining is None or self.remaining > 0

    def matches(self, path):
        """Whether the fault applies to ``path``."""
        return self.path_prefix is None or path.startswith(self.path_prefix)

    def response(self):
        """The answer sent instead of the real one."""
        headers = () if self.retry_after is None else (("Retry-After", str(self.retry_after)),)
        return json_response(self.status, {"error": "injected fault", "status": self.status}, headers)


class Headers(dict):
    """Request headers keyed by lower-cased name; ``get`` is case-insensitive."""

    def get(self, name, default=None):
        return super().get(name.lower(), default)

    def __getitem__(self, name):
        return super().__getitem__(name.lower())

    def __contains__(self, name):
        return super().__contains__(name.lower())


class FakeRequestHandler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 handler that turns sockets into ``Request`` objects for the fake."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeServer/1.0"
    sys_version = ""
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        self.server.fake._track_connection(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.fake._track_connection(self.connection, False)

    def parse_request(self):
        """Lean replacement of the stdlib parser (which goes through the slow ``email`` package)."""
        self.command, self.close_connection = None, True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if len(words) != 3 or words[2] not in ("HTTP/1.0", "HTTP/1.1"):
            self.request_version = self.default_request_version
            self.send_error(400, f"Bad request line {self.requestline!r}")
            return False
        self.command, self.path, self.request_version = words
        self.headers = self._read_headers()
        if self.headers is None:
            self.send_error(431, "Request header fields too large")
            return False
        connection = self.headers.get("Connection", "").lower()
        self.close_connection = connection == "close" or (
            self.request_version == "HTTP/1.0" and connection != "keep-alive")
        if self.headers.get("Expect", "").lower() == "100-continue" and self.request_version == "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def _read_headers(self):
        headers = Headers()
        for _ in range(MAX_HEADERS):
            line = self.rfile.readline(MAX_HEADER_LINE + 1)
            if len(line) > MAX_HEADER_LINE:
                return None
            if line in (b"\r\n", b"\n", b""):
                return headers
            name, _, value = str(line, "iso-8859-1").partition(":")
            key, value = name.strip().lower(), value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return None

    def log_request(self, code="-", size="-"):
        """Requests are logged by the fake itself."""

    def log_message(self, fmt, *args):
        logger.debug("%s: %s", self.address_string(), fmt % args)

    def _serve(self):
        fake = self.server.fake
        if fake.is_down() and not self.path.startswith(CONTROL_PREFIX):
            self.close_connection = True
            return
        try:
            request = self._read_request(fake)
        except ValueError:
            self.send_error(400, "Bad request framing")
            self.close_connection = True
            return
        try:
            self._write(fake.dispatch(request))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def _read_request(self, fake):
        parts = urlsplit(self.path)
        limit = CONTROL_BODY_LIMIT if parts.path.startswith(CONTROL_PREFIX) else fake.max_body_bytes
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body, size = self._read_chunked(limit)
        else:
            size = int(self.headers.get("Content-Length") or 0)
            if size < 0:
                raise ValueError("negative Content-Length")
            body = self._read_exactly(size, limit)
        too_large = size > limit
        return Request(self.command, parts.path, parts.query, self.headers, b"" if too_large else body, size, too_large)

    def _read_exactly(self, size, limit):
        if size <= limit:
            return self.rfile.read(size)
        left = size
        while left > 0:
            chunk = self.rfile.read(min(left, STREAM_CHUNK_BYTES))
            if not chunk:
                raise ValueError("body shorter than Content-Length")
            left -= len(chunk)
        return b""

    def _read_chunked(self, limit):
        parts, size = [], 0
        while True:
            chunk_size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
            if chunk_size == 0:
                break
            data = self._read_exactly(chunk_size, limit - size if size <= limit else -1)
            size += chunk_size
            if size <= limit:
                parts.append(data)
            self.rfile.readline(8)
        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
            continue
        return b"".join(parts), size

    def _write(self, response):
        if response.stream is None:
            self.wfile.write(self._head(response, ("Content-Length", str(len(response.body)))) + response.body)
            return
        self.wfile.write(self._head(response, ("Transfer-Encoding", "chunked")))
        for chunk in response.stream:
            if chunk:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def _head(self, response, framing):
        """Status line and headers in one buffer, so each answer is a single socket write."""
        reason = self.responses.get(response.status, ("",))[0]
        lines = [f"HTTP/1.1 {response.status} {reason}", f"Server: {self.server_version}",
                 f"Date: {http_date()}", f"Content-Type: {response.content_type}"]
        lines.extend(f"{name}: {value}" for name, value in (*response.headers, framing))
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Server(ThreadingHTTPServer):
    """Threaded server whose stop does not wait for idle keep-alive connections."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class FakeServer:
    """Base of the fakes: threaded loopback server, faults, request log, inspection endpoints.

    Subclasses set ``routes`` (a tuple of ``Route``), implement ``_reset_state``
    and ``state``, and may override ``check_request`` (auth, throttling),
    ``stats`` and ``control_handlers``. Every piece of mutable state is guarded
    by ``self._lock``; inspection methods return copies.
    """

    routes = ()
    max_body_bytes = 64 * 1024 * 1024
    request_log_limit = 200_000

    def __init__(self, host="127.0.0.1", port=0):
        self._lock = threading.RLock()
        self._host = host
        self._port = port
        self._server = None
        self._thread = None
        self._connections = set()
        self._routes_by_method = {}
        for route in self.routes:
            self._routes_by_method.setdefault(route.method, []).append(route)
        self._clear()

    # lifecycle

    @property
    def url(self):
        """Base URL, e.g. ``http://127.0.0.1:PORT`` (known once a port is bound or given)."""
        return f"http://{self._host}:{self.port}"

    @property
    def port(self):
        """The bound TCP port (kept after stop, so a restart reuses it)."""
        if self._server is not None:
            return self._server.server_address[1]
        if not self._port:
            raise RuntimeError(f"{type(self).__name__} has no port until started")
        return self._port

    def start(self):
        """Bind and serve from a daemon thread; returns self. A restart reuses the first bound port."""
        if self._server is not None:
            return self
        self._server = _Server((self._host, self._port), FakeRequestHandler)
        self._server.fake = self
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
            name=f"{type(self).__name__}-{self.port}", daemon=True,
        )
        self._thread.start()
        logger.info("%s listening on %s", type(self).__name__, self.url)
        return self

    def stop(self):
        """Stop serving and drop every open keep-alive connection."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._close_connections()
        self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def reset(self):
        """Forget recorded state, faults, the request log and statistics."""
        with self._lock:
            self._clear()

    def _clear(self):
        self._down = False
        self._faults = []
        self._log = deque(maxlen=self.request_log_limit)
        self._request_count = 0
        self._by_route = Counter()
        self._by_status = Counter()
        self._reset_state()

    def _reset_state(self):
        """Subclasses clear their own recorded state here (called under the lock)."""

    def _track_connection(self, connection, opened):
        with self._lock:
            if opened:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _close_connections(self):
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # fault injection

    def fail(self, status=500, count=1, retry_after=None, path_prefix=None):
        """Answer ``status`` to the next ``count`` matching requests, without changing state."""
        with self._lock:
            self._faults.append(Fault(int(status), int(count), None, retry_after, path_prefix))

    def fail_for(self, seconds, status=503, retry_after=None, path_prefix=None):
        """Answer ``status`` to every matching request for ``seconds``."""
        with self._lock:
            until = time.monotonic() + float(seconds)
            self._faults.append(Fault(int(status), None, until, retry_after, path_prefix))

    def set_down(self, down=True):
        """While down, close connections without answering (a network failure); /_fake/ still answers."""
        with self._lock:
            self._down = bool(down)

    def is_down(self):
        """Whether the fake currently drops connections."""
        with self._lock:
            return self._down

    def _injected_fault(self, path, now):
        with self._lock:
            if not self._faults:
                return None
            self._faults = [fault for fault in self._faults if fault.active(now)]
            for fault in self._faults:
                if fault.matches(path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault.response()
        return None

    # dispatching

    def dispatch(self, request):
        """Answer one request: control endpoints, injected faults, checks, then the route."""
        if request.path.startswith(CONTROL_PREFIX):
            return self._dispatch_control(request)
        route, params = self._match(request.method, request.path)
        template = route.template if route else UNMATCHED_ROUTE
        response = self._injected_fault(request.path, request.received_at)
        if response is None:
            response = self._call(route, params, request)
        self._record(request, f"{request.method} {template}", response.status)
        return response

    def _match(self, method, path):
        for route in self._routes_by_method.get(method, ()):
            params = route.match(path)
            if params is not None:
                return route, params
        return None, None

    def _call(self, route, params, request):
        try:
            response = self.check_request(request)
            if response is not None:
                return response
            if route is None:
                return json_response(404, {"error": f"no route for {request.method} {request.path}"})
            return getattr(self, route.handler)(request, **params)
        except Exception:
            logger.exception("%s failed on %s %s", type(self).__name__, request.method, request.path)
            return json_response(500, {"error": "fake server error"})

    def check_request(self, request):
        """Hook run before routing (auth, throttling): a Response refuses the request."""
        return None

    def _record(self, request, route_key, status):
        entry = {"method": request.method, "path": request.path, "status": status,
                 "bytes": request.size, "at": request.received_at}
        with self._lock:
            self._log.append(entry)
            self._request_count += 1
            self._by_route[route_key] += 1
            self._by_status[status] += 1

    # inspection

    def requests(self, path_prefix=None):
        """Logged requests ``{method, path, status, bytes, at}`` (bytes = request body size)."""
        with self._lock:
            return [dict(entry) for entry in self._log
                    if path_prefix is None or entry["path"].startswith(path_prefix)]

    def stats(self):
        """Counts: ``requests``, ``by_route`` ("METHOD /template" -> n) and ``by_status`` (int -> n)."""
        with self._lock:
            return {
                "requests": self._request_count,
                "by_route": dict(self._by_route),
                "by_status": dict(self._by_status),
            }

    def state(self, include_requests=True):
        """Everything the inspection methods return, as one JSON-friendly dict."""
        state = {"url": self.url, "stats": self.stats()}
        if include_requests:
            state["requests"] = self.requests()
        return state

    # control endpoints

    def control_handlers(self):
        """``(method, path) -> handler(request)`` for the ``/_fake/...`` endpoints."""
        return {
            ("GET", "/_fake/state"): lambda request: json_response(
                200, self.state(include_requests=request.query_param("requests") != "0")),
            ("GET", "/_fake/stats"): lambda request: json_response(200, self.stats()),
            ("GET", "/_fake/requests"): lambda request: json_response(
                200, self.requests(request.query_param("path_prefix"))),
            ("POST", "/_fake/reset"): self._control_reset,
            ("POST", "/_fake/fault"): self._control_fault,
        }

    def _dispatch_control(self, request):
        handler = self.control_handlers().get((request.method, request.path))
        if handler is None:
            return json_response(404, {"error": f"no control endpoint {request.method} {request.path}"})
        try:
            return handler(request)
        except (InvalidJSON, TypeError, ValueError, KeyError) as exc:
            return json_response(400, {"error": f"bad control request: {exc}"})

    def _control_reset(self, request):
        self.reset()
        return json_response(200, {"ok": True})

    def _control_fault(self, request):
        """Body: ``{"down": bool}``, or ``{"seconds", "status"?, ...}`` for fail_for, or fail() arguments."""
        params = request.json() or {}
        if "down" in params:
            self.set_down(params["down"])
        elif "seconds" in params:
            self.fail_for(**params)
        else:
            self.fail(**params)
        return json_response(200, {"ok": True})


def max_in_window(times, seconds):
    """Largest number of sorted timestamps falling in any window of ``seconds``."""
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


def base_arg_parser(description):
    """Command-line options common to every fake's process mode."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    return parser


def run_until_signalled(fake, log_level="WARNING"):
    """Serve ``fake`` until SIGTERM/SIGINT, announcing the URL on stdout once ready."""
    logging.basicConfig(level=getattr(logging, str(log_level).upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    fake.start()
    print(f"listening on {fake.url}", flush=True)
    try:
        while not stopping.wait(0.2):
            continue
    finally:
        fake.stop()
