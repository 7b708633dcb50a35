"""A loopback TCP proxy that tests put between the app and PostgreSQL or Redis, then cut and restore.

The shared services themselves are never stopped: a test points the process under test at the
proxy's port and simulates the outage here.

Modes of `cut()`:

* ``"refuse"`` — the listening socket is closed (new connections get ECONNREFUSED) and every open
  connection is reset: the service went down.
* ``"blackhole"`` — new connections are accepted but never reach the service and open connections
  stop forwarding bytes in both directions: packets are dropped, as in a network partition.

Every thread polls with a short timeout, so `stop()` ends them all within about a second.
"""
import socket
import threading
import time

POLL_SECONDS = 0.2
CHUNK_BYTES = 64 * 1024


class _Pair:
    """One client connection and, unless blackholed at accept time, its upstream connection."""

    def __init__(self, client, upstream):
        self.client, self.upstream = client, upstream
        self.closed = threading.Event()

    def close(self, reset=False):
        self.closed.set()
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            try:
                if reset:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()
            except OSError:
                pass


class TcpProxy:
    """Forward 127.0.0.1:<port> to target_host:target_port until cut."""

    def __init__(self, target_host, target_port, listen_host="127.0.0.1", port=0):
        if not listen_host.startswith("127.") and listen_host != "localhost":
            raise ValueError("the proxy only listens on loopback")
        self.target = (target_host, int(target_port))
        self.listen_host = listen_host
        self.port = port
        self.mode = "up"
        self.accepted = 0
        self._lock = threading.Lock()
        self._pairs = set()
        self._listener = None
        self._stopping = threading.Event()
        self._accept_thread = None

    # lifecycle

    def start(self):
        self._listen()
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"proxy-{self.port}", daemon=True)
        self._accept_thread.start()
        return self

    def stop(self):
        self._stopping.set()
        self._close_listener()
        self._drop_all(reset=True)
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=2)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def url(self, scheme, path="", user=""):
        """e.g. url("redis", "/7") → redis://127.0.0.1:<port>/7."""
        auth = f"{user}@" if user else ""
        return f"{scheme}://{auth}{self.listen_host}:{self.port}{path}"

    # faults

    def cut(self, mode="refuse"):
        """Simulate the service going away (see the module docstring for the modes)."""
        if mode not in ("refuse", "blackhole"):
            raise ValueError(f"unknown mode {mode!r}")
        with self._lock:
            self.mode = mode
        if mode == "refuse":
            self._close_listener()
            self._drop_all(reset=True)

    def restore(self):
        """Forward again; blackholed connections are dropped (their streams are corrupt by now)."""
        with self._lock:
            previous, self.mode = self.mode, "up"
        if previous == "blackhole":
            self._drop_all(reset=True)
        if self._listener is None:
            self._listen()

    # internals

    def _listen(self):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.listen_host, self.port))
        listener.listen(128)
        listener.settimeout(POLL_SECONDS)
        self.port = listener.getsockname()[1]
        self._listener = listener

    def _close_listener(self):
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def _drop_all(self, reset):
        with self._lock:
            pairs, self._pairs = list(self._pairs), set()
        for pair in pairs:
            pair.close(reset=reset)

    def _accept_loop(self):
        while not self._stopping.is_set():
            listener = self._listener
            if listener is None:
                time.sleep(POLL_SECONDS / 4)
                continue
            try:
                client, _ = listener.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted += 1
            self._open(client)

    def _open(self, client):
        upstream = None
        if self.mode == "up":
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                return
        pair = _Pair(client, upstream)
        with self._lock:
            self._pairs.add(pair)
        for source, sink in ((client, upstream), (upstream, client)):
            if source is not None:
                threading.Thread(target=self._pump, args=(pair, source, sink), daemon=True).start()

    def _pump(self, pair, source, sink):
        source.settimeout(POLL_SECONDS)
        while not pair.closed.is_set() and not self._stopping.is_set():
            try:
                data = source.recv(CHUNK_BYTES)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            if self.mode == "blackhole" or sink is None:
                continue
            try:
                sink.sendall(data)
            except OSError:
                break
        with self._lock:
            self._pairs.discard(pair)
        pair.close()
