"""Fake Hull platform on loopback: firehose, the organization API and extract downloads.

Thread mode::

    with FakeHull(connectors={"5a9d...": "secret"}) as hull:
        hull.set_connector_settings("5a9d...", {"site_id": "S"})
        hull.traits("jane@example.com")

Process mode::

    python -m tests.fakes.hull --port 9002 --connector HULLID:SECRET [--connector ...]
"""

import copy
import hmac
from collections import Counter, defaultdict

import jwt
from jwt.algorithms import HMACAlgorithm

from .base import (
    STREAM_CHUNK_BYTES, FakeServer, InvalidJSON, Response, Route, base_arg_parser, dumps, json_response,
    run_until_signalled,
)

MAX_FIREHOSE_BYTES = 10 * 1024 * 1024
FIREHOSE_TYPES = ("traits", "track", "alias")
USER_KEY_CLAIMS = ("id", "external_id", "email", "anonymous_id")
STATUS_VALUES = ("ok", "warning", "error")


class _HMACAcceptingShortKeys(HMACAlgorithm):
    """HS256 that, like Hull, accepts connector secrets shorter than 32 bytes without a warning."""

    def check_key_length(self, key):
        return None


def _user_token_decoder():
    decoder = jwt.PyJWT()
    decoder._jws.unregister_algorithm("HS256")
    decoder._jws.register_algorithm("HS256", _HMACAcceptingShortKeys(HMACAlgorithm.SHA256))
    return decoder


_DECODER = _user_token_decoder()


class BatchRejected(ValueError):
    """A firehose batch item is invalid, so the whole batch is refused."""


def user_key(as_user):
    """Key of a user: the first present of id, external_id, email, anonymous_id."""
    return next(str(as_user[claim]) for claim in USER_KEY_CLAIMS if as_user.get(claim))


def verify_user_token(token, connector_id, secret):
    """Claims of a user JWT signed HS256 with ``secret`` and issued by ``connector_id``."""
    if not isinstance(token, str) or not token:
        raise BatchRejected("missing Hull-Access-Token")
    try:
        claims = _DECODER.decode(token, secret, algorithms=["HS256"], issuer=connector_id,
                            options={"require": ["iss", "iat"]})
    except jwt.PyJWTError as exc:
        raise BatchRejected(f"invalid token: {exc}") from exc
    if isinstance(claims["iat"], bool) or not isinstance(claims["iat"], int):
        raise BatchRejected("iat must be an integer")
    if claims.get("io.hull.subjectType") != "user":
        raise BatchRejected("io.hull.subjectType must be 'user'")
    as_user = claims.get("io.hull.asUser")
    if not isinstance(as_user, dict) or not any(as_user.get(claim) for claim in USER_KEY_CLAIMS):
        raise BatchRejected(f"io.hull.asUser needs one of {', '.join(USER_KEY_CLAIMS)}")
    return claims


def parse_item(index, item, connector_id, secret):
    """Validate one firehose item; returns ``(type, asUser claims, body)``."""
    if not isinstance(item, dict):
        raise BatchRejected(f"batch[{index}] must be an object")
    kind, body, headers = item.get("type"), item.get("body"), item.get("headers")
    if kind not in FIREHOSE_TYPES:
        raise BatchRejected(f"batch[{index}].type must be one of {', '.join(FIREHOSE_TYPES)}")
    if not isinstance(body, dict) or not isinstance(headers, dict):
        raise BatchRejected(f"batch[{index}] needs object body and headers")
    if kind == "track" and (not isinstance(body.get("event"), str) or not body["event"]):
        raise BatchRejected(f"batch[{index}].body.event is required for track")
    try:
        claims = verify_user_token(headers.get("Hull-Access-Token"), connector_id, secret)
    except BatchRejected as exc:
        raise BatchRejected(f"batch[{index}]: {exc}") from exc
    return kind, claims["io.hull.asUser"], body


def synthetic_users(count, segment_ids=(), start=0):
    """A callable for ``serve_extract`` yielding ``count`` user_report lines lazily."""
    segment_ids = list(segment_ids)

    def lines():
        for number in range(start, start + count):
            yield {
                "id": f"{number:024x}", "email": f"user{number}@example.com", "external_id": f"ext-{number}",
                "name": f"User {number}", "created_at": "2024-01-01T00:00:00Z", "segment_ids": segment_ids,
            }

    return lines


def _ndjson_chunks(lines):
    """Encode dicts as newline-delimited JSON, grouped in chunks of about 64 KB."""
    buffer, size = [], 0
    for line in lines:
        encoded = dumps(line) + b"\n"
        buffer.append(encoded)
        size += len(encoded)
        if size >= STREAM_CHUNK_BYTES:
            yield b"".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


class FakeHull(FakeServer):
    """Fake Hull: firehose with per-item JWT checks, connector/status/segments API, extract files.

    ``connectors`` maps Hull connector ids to their secrets. When
    ``organization`` is given, the org API also requires that exact
    ``Hull-Organization`` header; otherwise any non-empty value is accepted.
    """

    max_body_bytes = MAX_FIREHOSE_BYTES
    routes = (
        Route("POST", "/", "_handle_firehose"),
        Route("GET", "/api/v1/users_segments", "_handle_users_segments"),
        Route("GET", "/api/v1/accounts_segments", "_handle_accounts_segments"),
        Route("GET", "/api/v1/{connector_id}", "_handle_get_connector"),
        Route("PUT", "/api/v1/{connector_id}", "_handle_put_connector"),
        Route("PUT", "/api/v1/{connector_id}/status", "_handle_put_status"),
        Route("GET", "/_extract/{name}", "_handle_extract"),
    )

    def __init__(self, connectors=None, organization=None, host="127.0.0.1", port=0):
        self._connectors = {str(key): str(value) for key, value in (connectors or {}).items()}
        self._organization = organization
        self._settings = {}
        self._names = {}
        self._segments = {"users": [], "accounts": []}
        self._extracts = {}
        super().__init__(host=host, port=port)

    def _reset_state(self):
        self._users = {}
        self._events = []
        self._aliases = []
        self._event_ids = set()
        self._statuses = defaultdict(list)
        self._counters = Counter()

    # configuration

    def add_connector(self, connector_id, secret, name=None):
        """Accept another connector id and secret."""
        with self._lock:
            self._connectors[str(connector_id)] = str(secret)
            if name is not None:
                self._names[str(connector_id)] = name

    def set_connector_settings(self, connector_id, private_settings):
        """``private_settings`` returned by ``GET /api/v1/<connector_id>``."""
        with self._lock:
            self._settings[str(connector_id)] = copy.deepcopy(private_settings)

    def set_segments(self, segments, kind="users"):
        """List returned by ``GET /api/v1/users_segments`` (or ``accounts_segments``)."""
        with self._lock:
            self._segments[kind] = copy.deepcopy(list(segments))

    def serve_extract(self, name, lines):
        """Serve ``GET /_extract/<name>`` as NDJSON; ``lines`` is a list of dicts or a callable
        returning an iterator of dicts (re-called per download, streamed chunked). Returns the URL."""
        with self._lock:
            self._extracts[name] = lines if callable(lines) else copy.deepcopy(list(lines))
        return f"{self.url}/_extract/{name}"

    # authentication

    def _secret_matches(self, connector_id, secret):
        with self._lock:
            expected = self._connectors.get(connector_id or "")
        return expected is not None and secret is not None and hmac.compare_digest(expected, secret)

    def _org_auth_error(self, request, connector_id=None):
        app_id = request.headers.get("Hull-App-Id")
        organization = request.headers.get("Hull-Organization")
        if (not self._secret_matches(app_id, request.headers.get("Hull-Access-Token"))
                or not organization
                or (self._organization is not None and organization != self._organization)
                or (connector_id is not None and connector_id != app_id)):
            return json_response(401, {"error": "Invalid credentials"})
        return None

    # firehose

    def _handle_firehose(self, request):
        connector_id = request.headers.get("Hull-App-Id")
        if not self._secret_matches(connector_id, request.headers.get("Hull-Access-Token")):
            return json_response(401, {"error": "Invalid credentials"})
        if request.too_large:
            return json_response(413, {"error": f"body larger than {MAX_FIREHOSE_BYTES} bytes"})
        try:
            items = self._parse_batch(request, connector_id)
        except (BatchRejected, InvalidJSON) as exc:
            with self._lock:
                self._counters["rejected_batches"] += 1
            return json_response(400, {"error": str(exc)})
        with self._lock:
            self._counters["firehose_requests"] += 1
            self._counters["firehose_items"] += len(items)
            for kind, as_user, body in items:
                self._apply_item(connector_id, kind, as_user, body)
        return json_response(200, {"ok": True})

    def _parse_batch(self, request, connector_id):
        payload = request.json()
        if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
            raise BatchRejected("body must be an object with a batch list")
        with self._lock:
            secret = self._connectors[connector_id]
        return [parse_item(index, item, connector_id, secret) for index, item in enumerate(payload["batch"])]

    def _apply_item(self, connector_id, kind, as_user, body):
        key = user_key(as_user)
        user = self._users.setdefault(key, {"claims": {}, "traits": {}})
        user["claims"].update(as_user)
        if kind == "traits":
            for name, value in body.items():
                if value is None:
                    user["traits"].pop(name, None)
                else:
                    user["traits"][name] = copy.deepcopy(value)
        elif kind == "track":
            self._track(connector_id, key, as_user, body)
        else:
            self._aliases.append({"user_key": key, "claims": dict(as_user), "body": copy.deepcopy(body)})

    def _track(self, connector_id, key, as_user, body):
        event_id = body.get("event_id")
        if event_id is not None:
            if (connector_id, str(event_id)) in self._event_ids:
                self._counters["duplicate_events"] += 1
                return
            self._event_ids.add((connector_id, str(event_id)))
        self._events.append({
            "user_key": key, "claims": dict(as_user), "event": body["event"],
            "properties": copy.deepcopy(body.get("properties") or {}), "event_id": event_id,
            "created_at": body.get("created_at"), "source": body.get("source"), "body": copy.deepcopy(body),
        })

    # organization API

    def _handle_get_connector(self, request, connector_id):
        error = self._org_auth_error(request, connector_id)
        if error is not None:
            return error
        with self._lock:
            return json_response(200, {
                "id": connector_id, "name": self._names.get(connector_id, f"Connector {connector_id}"),
                "private_settings": self._settings.get(connector_id, {}),
            })

    def _handle_put_connector(self, request, connector_id):
        error = self._org_auth_error(request, connector_id)
        if error is not None:
            return error
        try:
            body = request.json()
        except InvalidJSON as exc:
            return json_response(400, {"error": str(exc)})
        if not isinstance(body, dict) or not isinstance(body.get("private_settings", {}), dict):
            return json_response(400, {"error": "body must be an object with private_settings"})
        with self._lock:
            self._settings.setdefault(connector_id, {}).update(copy.deepcopy(body.get("private_settings", {})))
            if isinstance(body.get("name"), str):
                self._names[connector_id] = body["name"]
        return self._handle_get_connector(request, connector_id)

    def _handle_put_status(self, request, connector_id):
        error = self._org_auth_error(request, connector_id)
        if error is not None:
            return error
        try:
            body = request.json()
        except InvalidJSON as exc:
            return json_response(400, {"error": str(exc)})
        if (not isinstance(body, dict) or body.get("status") not in STATUS_VALUES
                or not isinstance(body.get("messages", []), list)):
            return json_response(400, {"error": f"status must be one of {', '.join(STATUS_VALUES)}, "
                                                "messages a list"})
        status = {"status": body["status"], "messages": list(body.get("messages", []))}
        with self._lock:
            self._statuses[connector_id].append(status)
        return json_response(200, status)

    def _handle_users_segments(self, request):
        return self._segments_response(request, "users")

    def _handle_accounts_segments(self, request):
        return self._segments_response(request, "accounts")

    def _segments_response(self, request, kind):
        error = self._org_auth_error(request)
        if error is not None:
            return error
        with self._lock:
            return json_response(200, self._segments[kind])

    # extracts

    def _handle_extract(self, request, name):
        with self._lock:
            source = self._extracts.get(name)
        if source is None:
            return json_response(404, {"error": f"no extract {name!r}"})
        lines = source() if callable(source) else iter(source)
        return Response(200, stream=_ndjson_chunks(lines), content_type="application/x-ndjson")

    # inspection

    def users(self):
        """``{user key: {"claims": merged asUser claims, "traits": {...}}}``."""
        with self._lock:
            return copy.deepcopy(self._users)

    def user(self, key):
        """One user as in ``users()``, or None."""
        with self._lock:
            return copy.deepcopy(self._users.get(key))

    def traits(self, key):
        """The traits of one user (``{}`` when unknown)."""
        with self._lock:
            return copy.deepcopy(self._users.get(key, {}).get("traits", {}))

    def events(self, user_key=None, event=None):
        """Tracked events ``{user_key, claims, event, properties, event_id, created_at, source, body}``."""
        with self._lock:
            return [copy.deepcopy(item) for item in self._events
                    if (user_key is None or item["user_key"] == user_key)
                    and (event is None or item["event"] == event)]

    def aliases(self):
        """Received alias items ``{user_key, claims, body}``."""
        with self._lock:
            return copy.deepcopy(self._aliases)

    def statuses(self, connector_id):
        """Status bodies ``{status, messages}`` PUT by a connector, oldest first."""
        with self._lock:
            return copy.deepcopy(self._statuses.get(str(connector_id), []))

    def stats(self):
        """Base counts plus firehose_requests/items (accepted batches), duplicate_events, rejected_batches."""
        stats = super().stats()
        with self._lock:
            for name in ("firehose_requests", "firehose_items", "duplicate_events", "rejected_batches"):
                stats[name] = self._counters[name]
        return stats

    def state(self, include_requests=True):
        state = super().state(include_requests)
        with self._lock:
            connector_ids = sorted(set(self._connectors) | set(self._statuses))
            state.update(
                settings=copy.deepcopy(self._settings), segments=copy.deepcopy(self._segments),
                extracts=sorted(self._extracts),
            )
        state.update(users=self.users(), events=self.events(), aliases=self.aliases(),
                     statuses={connector_id: self.statuses(connector_id) for connector_id in connector_ids})
        return state

    def control_handlers(self):
        handlers = super().control_handlers()
        handlers[("POST", "/_fake/connector_settings")] = self._control_settings
        handlers[("POST", "/_fake/segments")] = self._control_segments
        handlers[("POST", "/_fake/extract")] = self._control_extract
        return handlers

    def _control_settings(self, request):
        body = request.json()
        self.set_connector_settings(body["connector_id"], body["private_settings"])
        return json_response(200, {"ok": True})

    def _control_segments(self, request):
        body = request.json()
        self.set_segments(body["segments"], body.get("kind", "users"))
        return json_response(200, {"ok": True})

    def _control_extract(self, request):
        """Body ``{"name", "lines": [...]}`` or ``{"name", "count", "segment_ids"?}`` for synthetic users."""
        body = request.json()
        if "lines" in body:
            lines = body["lines"]
        else:
            lines = synthetic_users(int(body["count"]), body.get("segment_ids", ()))
        return json_response(200, {"url": self.serve_extract(body["name"], lines)})


def _parse_connector(value):
    connector_id, separator, secret = value.partition(":")
    if not separator or not connector_id or not secret:
        raise ValueError(f"--connector expects HULLID:SECRET, got {value!r}")
    return connector_id, secret


def main(argv=None):
    """Process mode entry point."""
    parser = base_arg_parser("Fake Hull firehose and organization API")
    parser.add_argument("--connector", action="append", default=[], type=_parse_connector,
                        metavar="HULLID:SECRET", help="accepted connector (repeatable)")
    parser.add_argument("--organization", default=None, help="required Hull-Organization value (default any)")
    args = parser.parse_args(argv)
    fake = FakeHull(connectors=dict(args.connector), organization=args.organization,
                    host=args.host, port=args.port)
    run_until_signalled(fake, args.log_level)


if __name__ == "__main__":
    main()
