"""Fake Customer.io Track API (v1 and v2) on loopback, enforcing the documented limits.

Thread mode::

    with FakeCustomerIO(site_id="site", api_key="key", rate_limit=100) as cio:
        requests.put(f"{cio.url}/api/v1/customers/u1", json={...}, auth=("site", "key"))
        cio.person(id="u1")

Process mode::

    python -m tests.fakes.customerio --port 9001 --site-id S --api-key K --rate-limit 100
"""

import base64
import binascii
import copy
import re
import time
from array import array
from collections import Counter
from dataclasses import dataclass

from .base import (
    FakeServer, InvalidJSON, Route, base_arg_parser, json_response, json_size, max_in_window,
    run_until_signalled, utf8_size,
)

MAX_BATCH_BYTES = 500 * 1024
MAX_OP_BYTES = 32 * 1024
MAX_IDENTIFIER_BYTES = 150
MAX_ATTRIBUTE_NAME_BYTES = 150
MAX_ATTRIBUTE_VALUE_BYTES = 1000
MAX_ATTRIBUTES = 300
MAX_EVENT_NAME_BYTES = 100
MAX_EVENT_DATA_BYTES = 100_000

PERSON_IDENTIFIER_KINDS = ("id", "email", "phone", "cio_id")
MERGE_IDENTIFIER_KINDS = ("id", "email", "cio_id")
EVENT_ACTIONS = ("event", "page", "screen")
PERSON_ACTIONS = ("identify", "delete", "merge", "suppress", "unsuppress") + EVENT_ACTIONS
NON_ATTRIBUTE_KEYS = frozenset({"id", "email", "_update", "_timestamp"})
EMAIL_RE = re.compile(r"^[^@\s/]+@[^@\s/]+\.[^@\s/]+$")


@dataclass
class OpError:
    """Why one operation was refused; ``reason`` is too_large, required, invalid, conflict or unsupported."""

    reason: str
    field: str
    message: str

    def as_dict(self, batch_index=None):
        """The v2 error entry, with ``batch_index`` when it comes from a batch."""
        entry = {"reason": self.reason, "field": self.field, "message": self.message}
        if batch_index is not None:
            entry = {"batch_index": batch_index, **entry}
        return entry


# validation (pure functions, no state)

def validate_op(op, max_bytes=MAX_OP_BYTES):
    """First rule a v2 operation breaks, or None. ``max_bytes=None`` skips the 32 KB check (v1)."""
    if not isinstance(op, dict):
        return OpError("invalid", "", "operation must be a JSON object")
    if max_bytes is not None and json_size(op) > max_bytes:
        return OpError("too_large", "", f"operation is larger than {max_bytes} bytes")
    if op.get("type") != "person":
        return OpError("unsupported", "type", f"unsupported type {op.get('type')!r}")
    action = op.get("action")
    if action not in PERSON_ACTIONS:
        return OpError("unsupported", "action", f"unsupported person action {action!r}")
    if action == "merge":
        return _validate_merge(op)
    error = validate_identifiers(op.get("identifiers"), PERSON_IDENTIFIER_KINDS, "identifiers")
    if error is not None:
        return error
    if action == "identify":
        return validate_attributes(op.get("attributes"))
    if action in EVENT_ACTIONS:
        return validate_event(op.get("name"), op.get("attributes"))
    return None


def validate_identifiers(identifiers, kinds, field):
    """Exactly one identifier among ``kinds``, with a non-empty value of at most 150 bytes."""
    if not isinstance(identifiers, dict) or len(identifiers) != 1 or next(iter(identifiers)) not in kinds:
        return OpError("invalid", field, f"{field} must contain exactly one of {', '.join(kinds)}")
    kind, value = next(iter(identifiers.items()))
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        return OpError("invalid", f"{field}.{kind}", f"{kind} must be a non-empty string or number")
    if utf8_size(str(value)) > MAX_IDENTIFIER_BYTES:
        return OpError("too_large", f"{field}.{kind}", f"{kind} is longer than {MAX_IDENTIFIER_BYTES} bytes")
    return None


def validate_attributes(attributes, field="attributes"):
    """Person attribute limits: 300 names, 150-byte names, 1000-byte values, 150-byte id."""
    if attributes is None:
        return None
    if not isinstance(attributes, dict):
        return OpError("invalid", field, f"{field} must be an object")
    if len(attributes) > MAX_ATTRIBUTES:
        return OpError("too_large", field, f"more than {MAX_ATTRIBUTES} attributes")
    for name, value in attributes.items():
        if utf8_size(name) > MAX_ATTRIBUTE_NAME_BYTES:
            return OpError("too_large", f"{field}.{name}",
                           f"attribute name is longer than {MAX_ATTRIBUTE_NAME_BYTES} bytes")
        if value is not None and utf8_size(value) > MAX_ATTRIBUTE_VALUE_BYTES:
            return OpError("too_large", f"{field}.{name}",
                           f"attribute value is longer than {MAX_ATTRIBUTE_VALUE_BYTES} bytes")
    identifier = attributes.get("id")
    if identifier is not None and utf8_size(str(identifier)) > MAX_IDENTIFIER_BYTES:
        return OpError("too_large", f"{field}.id", f"id is longer than {MAX_IDENTIFIER_BYTES} bytes")
    return None


def validate_event(name, attributes, attributes_field="attributes"):
    """Event rules: name required (at most 100 bytes), data an object of at most 100,000 bytes."""
    if not isinstance(name, str) or not name.strip():
        return OpError("required", "name", "event name is required")
    if utf8_size(name) > MAX_EVENT_NAME_BYTES:
        return OpError("too_large", "name", f"event name is longer than {MAX_EVENT_NAME_BYTES} bytes")
    if attributes is None:
        return None
    if not isinstance(attributes, dict):
        return OpError("invalid", attributes_field, "event data must be an object")
    if json_size(attributes) > MAX_EVENT_DATA_BYTES:
        return OpError("too_large", attributes_field, f"event data is larger than {MAX_EVENT_DATA_BYTES} bytes")
    return None


def _validate_merge(op):
    return (validate_identifiers(op.get("primary"), MERGE_IDENTIFIER_KINDS, "primary")
            or validate_identifiers(op.get("secondary"), MERGE_IDENTIFIER_KINDS, "secondary"))


def v1_identifiers(identifier):
    """v1 path identifier to v2 identifiers: ``cio_`` prefix, email-looking, else id."""
    if identifier.startswith("cio_"):
        return {"cio_id": identifier[len("cio_"):]}
    if EMAIL_RE.match(identifier):
        return {"email": identifier}
    return {"id": identifier}


def _only_identifier(identifiers):
    kind, value = next(iter(identifiers.items()))
    return kind, str(value)


def _index_key(kind, value):
    return value.lower() if kind == "email" else value


# workspace state

class Workspace:
    """People, events and suppressions of one workspace.

    Not thread-safe: ``FakeCustomerIO`` holds its lock around every call.
    ``apply`` takes an already validated v2 operation and returns an OpError or None.
    """

    def __init__(self):
        self.people = {}
        self.index = {"id": {}, "email": {}, "phone": {}}
        self.deleted = []
        self.events = []
        self.anonymous_events = []
        self.event_ids = set()
        self.suppressed = set()
        self.counters = Counter()
        self._next_cio_id = 1

    def find(self, kind, value):
        """The live person holding identifier ``kind=value``, or None."""
        if value is None:
            return None
        value = str(value)
        if kind == "cio_id":
            return self.people.get(value)
        cio_id = self.index[kind].get(_index_key(kind, value))
        return self.people.get(cio_id) if cio_id else None

    def apply(self, op):
        """Apply one valid person operation."""
        action = op["action"]
        if action == "merge":
            return self._merge(op["primary"], op["secondary"])
        kind, value = _only_identifier(op["identifiers"])
        if action == "unsuppress":
            self.suppressed.discard((kind, _index_key(kind, value)))
            return None
        if (kind, _index_key(kind, value)) in self.suppressed:
            self.counters["dropped_operations"] += 1
            return None
        handler = {"identify": self._identify, "delete": self._delete, "suppress": self._suppress}.get(action)
        if handler is None:
            return self._event(kind, value, op)
        return handler(kind, value, op)

    def _new_person(self, created):
        cio_id = f"cio{self._next_cio_id:07d}"
        self._next_cio_id += 1
        return {"cio_id": cio_id, "id": None, "email": None, "phone": None,
                "attributes": {}, "created": created, "updated_count": 0}

    def _register(self, person):
        self.people[person["cio_id"]] = person
        for kind in self.index:
            if person[kind] is not None:
                self.index[kind][_index_key(kind, str(person[kind]))] = person["cio_id"]

    def _unregister(self, person):
        self.people.pop(person["cio_id"], None)
        for kind in self.index:
            if person[kind] is not None:
                self.index[kind].pop(_index_key(kind, str(person[kind])), None)

    def _identify(self, kind, value, op):
        attributes = op.get("attributes") or {}
        person = self.find(kind, value) or self._find_by_body(attributes)
        if person is None:
            if attributes.get("_update") in (True, "true") or kind == "cio_id":
                self.counters["skipped_updates"] += 1
                return None
            person = self._new_person(created=True)
        wanted = {kind: value} if kind != "cio_id" else {}
        wanted.update({key: attributes[key] for key in ("id", "email") if key in attributes})
        for key, wanted_value in wanted.items():
            owner = self.find(key, wanted_value)
            if owner is not None and owner is not person:
                return OpError("conflict", f"attributes.{key}",
                               f"{key} {wanted_value!r} already belongs to another person")
        self._update(person, wanted, attributes)
        return None

    def _find_by_body(self, attributes):
        for key in ("id", "email"):
            person = self.find(key, attributes.get(key))
            if person is not None:
                return person
        return None

    def _update(self, person, identifiers, attributes):
        is_new = person["cio_id"] not in self.people
        if not is_new:
            self._unregister(person)
            person["updated_count"] += 1
        for key, value in identifiers.items():
            person[key] = None if value is None else str(value)
        for name, value in attributes.items():
            if name in NON_ATTRIBUTE_KEYS:
                continue
            if value is None:
                person["attributes"].pop(name, None)
            else:
                person["attributes"][name] = value
        self._register(person)

    def _delete(self, kind, value, op):
        person = self.find(kind, value)
        if person is not None:
            self._unregister(person)
            self.deleted.append(copy.deepcopy(person))
        return None

    def _suppress(self, kind, value, op):
        self.suppressed.add((kind, _index_key(kind, value)))
        person = self.find(kind, value)
        if person is not None:
            for key in ("id", "email"):
                if person[key] is not None:
                    self.suppressed.add((key, _index_key(key, person[key])))
            self._delete(kind, value, op)
        return None

    def _event(self, kind, value, op):
        event_id = op.get("id")
        if event_id is not None and str(event_id) in self.event_ids:
            self.counters["duplicate_events"] += 1
            return None
        person = self.find(kind, value)
        if person is None:
            if kind == "cio_id":
                self.counters["dropped_operations"] += 1
                return None
            person = self._new_person(created=False)
            person[kind] = value
            self._register(person)
        self._remember_event_id(event_id)
        self.events.append({
            "person_cio_id": person["cio_id"], "person_id": person["id"], "name": op["name"],
            "type": op["action"], "id": event_id, "timestamp": op.get("timestamp", int(time.time())),
            "attributes": op.get("attributes") or {},
        })
        return None

    def _remember_event_id(self, event_id):
        if event_id is not None:
            self.event_ids.add(str(event_id))

    def anonymous_event(self, body):
        """Store a v1 anonymous event unless its id was already received."""
        event_id = body.get("id")
        if event_id is not None and str(event_id) in self.event_ids:
            self.counters["duplicate_events"] += 1
            return
        self._remember_event_id(event_id)
        self.anonymous_events.append({
            "anonymous_id": body.get("anonymous_id"), "name": body["name"], "type": body.get("type", "event"),
            "id": event_id, "timestamp": body.get("timestamp", int(time.time())),
            "attributes": body.get("data") or {},
        })

    def _merge(self, primary_ids, secondary_ids):
        primary = self.find(*_only_identifier(primary_ids))
        secondary = self.find(*_only_identifier(secondary_ids))
        if primary is None or secondary is None or primary is secondary:
            self.counters["skipped_merges"] += 1
            return None
        for name, value in secondary["attributes"].items():
            primary["attributes"].setdefault(name, value)
        for event in self.events:
            if event["person_cio_id"] == secondary["cio_id"]:
                event.update(person_cio_id=primary["cio_id"], person_id=primary["id"])
        self._unregister(secondary)
        self.deleted.append({**copy.deepcopy(secondary), "merged_into": primary["cio_id"]})
        return None


# the server

class FakeCustomerIO(FakeServer):
    """Fake Customer.io Track API: Basic auth, token-bucket rate limit, v1 and v2 endpoints.

    State lives in a ``Workspace``; inspection methods (``people``, ``person``,
    ``events``, ``anonymous_events``, ``deleted``, ``suppressed``, ``stats``,
    ``max_requests_in_window``) return copies.
    """

    routes = (
        Route("GET", "/auth", "_handle_auth"),
        Route("GET", "/api/v1/accounts/region", "_handle_region"),
        Route("PUT", "/api/v1/customers/{identifier}", "_handle_v1_identify"),
        Route("DELETE", "/api/v1/customers/{identifier}", "_handle_v1_delete"),
        Route("POST", "/api/v1/customers/{identifier}/events", "_handle_v1_event"),
        Route("POST", "/api/v1/customers/{identifier}/suppress", "_handle_v1_suppress"),
        Route("POST", "/api/v1/customers/{identifier}/unsuppress", "_handle_v1_unsuppress"),
        Route("POST", "/api/v1/events", "_handle_v1_anonymous_event"),
        Route("POST", "/api/v1/merge_customers", "_handle_v1_merge"),
        Route("POST", "/api/v2/entity", "_handle_v2_entity"),
        Route("POST", "/api/v2/batch", "_handle_v2_batch"),
    )

    def __init__(self, site_id, api_key, rate_limit=None, region="us", host="127.0.0.1", port=0):
        self._credentials = (str(site_id), str(api_key))
        self._rate_limit = None
        self.region = region
        super().__init__(host=host, port=port)
        self.set_rate_limit(rate_limit)

    def _reset_state(self):
        self._workspace = Workspace()
        self._api_times = array("d")
        self._throttled = 0
        self._batch_operations = 0
        self._tokens = float(self._rate_limit or 0)
        self._refilled_at = time.monotonic()

    # configuration

    def set_credentials(self, site_id, api_key):
        """Rotate the accepted Basic-auth credentials."""
        with self._lock:
            self._credentials = (str(site_id), str(api_key))

    def set_rate_limit(self, rate_limit):
        """Requests per second allowed on /api (bucket capacity = rate); None or 0 means no limit."""
        with self._lock:
            self._rate_limit = float(rate_limit) if rate_limit else None
            self._tokens = self._rate_limit or 0.0
            self._refilled_at = time.monotonic()

    # checks run before every route

    def check_request(self, request):
        if request.path != "/auth" and not request.path.startswith("/api/"):
            return None
        if not self._authorized(request.headers.get("Authorization")):
            return json_response(401, {"meta": {"error": "Unauthorized request"}},
                                 (("WWW-Authenticate", 'Basic realm="track"'),))
        if request.path.startswith("/api/") and not self._take_token():
            return json_response(429, {"meta": {"error": "Too many requests"}})
        return None

    def _authorized(self, header):
        scheme, _, encoded = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        site_id, _, api_key = decoded.partition(":")
        with self._lock:
            return (site_id, api_key) == self._credentials

    def _take_token(self):
        with self._lock:
            if self._rate_limit is None:
                return True
            now = time.monotonic()
            elapsed = now - self._refilled_at
            self._tokens = min(self._rate_limit, self._tokens + elapsed * self._rate_limit)
            self._refilled_at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            self._throttled += 1
            return False

    def _record(self, request, route_key, status):
        super()._record(request, route_key, status)
        if request.path.startswith("/api/"):
            with self._lock:
                self._api_times.append(request.received_at)

    # v1 handlers

    def _handle_auth(self, request):
        return json_response(200, {})

    def _handle_region(self, request):
        return json_response(200, {"url": self.url, "region": self.region, "environment_id": 1})

    def _handle_v1_identify(self, request, identifier):
        body, error = _v1_object(request)
        if error is not None:
            return error
        return self._apply_v1({"type": "person", "action": "identify",
                               "identifiers": v1_identifiers(identifier), "attributes": body})

    def _handle_v1_delete(self, request, identifier):
        return self._apply_v1({"type": "person", "action": "delete", "identifiers": v1_identifiers(identifier)})

    def _handle_v1_suppress(self, request, identifier):
        return self._apply_v1({"type": "person", "action": "suppress", "identifiers": v1_identifiers(identifier)})

    def _handle_v1_unsuppress(self, request, identifier):
        return self._apply_v1({"type": "person", "action": "unsuppress",
                               "identifiers": v1_identifiers(identifier)})

    def _handle_v1_event(self, request, identifier):
        body, error = _v1_object(request)
        if error is not None:
            return error
        kind = body.get("type", "event")
        if kind not in EVENT_ACTIONS:
            return _v1_errors(f"type must be one of {', '.join(EVENT_ACTIONS)}")
        op = {"type": "person", "action": kind, "identifiers": v1_identifiers(identifier),
              "name": body.get("name"), "attributes": body.get("data")}
        op.update({key: body[key] for key in ("id", "timestamp") if key in body})
        return self._apply_v1(op)

    def _handle_v1_anonymous_event(self, request):
        body, error = _v1_object(request)
        if error is not None:
            return error
        invalid = validate_event(body.get("name"), body.get("data"), "data")
        if invalid is None and body.get("type", "event") not in EVENT_ACTIONS:
            invalid = OpError("invalid", "type", f"type must be one of {', '.join(EVENT_ACTIONS)}")
        if invalid is None and not body.get("anonymous_id") and not (body.get("data") or {}).get("recipient"):
            invalid = OpError("required", "data.recipient", "an event without anonymous_id needs data.recipient")
        if invalid is not None:
            return _v1_errors(invalid.message)
        with self._lock:
            self._workspace.anonymous_event(body)
        return json_response(200, {})

    def _handle_v1_merge(self, request):
        body, error = _v1_object(request)
        if error is not None:
            return error
        op = {"type": "person", "action": "merge", "primary": body.get("primary"),
              "secondary": body.get("secondary")}
        invalid = validate_op(op, max_bytes=None)
        if invalid is not None:
            return json_response(400, {"meta": {"error": invalid.message}})
        with self._lock:
            self._workspace.apply(op)
        return json_response(200, {})

    def _apply_v1(self, op):
        error = validate_op(op, max_bytes=None)
        if error is None:
            with self._lock:
                error = self._workspace.apply(op)
        if error is not None:
            return _v1_errors(error.message)
        return json_response(200, {})

    # v2 handlers

    def _handle_v2_entity(self, request):
        if request.too_large or request.size > MAX_OP_BYTES:
            return _v2_errors(OpError("too_large", "", f"request is larger than {MAX_OP_BYTES} bytes"))
        try:
            op = request.json()
        except InvalidJSON as exc:
            return _v2_errors(OpError("invalid", "", f"body is not JSON: {exc}"))
        error = validate_op(op)
        if error is None:
            with self._lock:
                error = self._workspace.apply(op)
        return json_response(200, {}) if error is None else _v2_errors(error)

    def _handle_v2_batch(self, request):
        if request.too_large or request.size > MAX_BATCH_BYTES:
            return _v2_errors(OpError("too_large", "", f"request is larger than {MAX_BATCH_BYTES} bytes"))
        try:
            payload = request.json()
        except InvalidJSON as exc:
            return _v2_errors(OpError("invalid", "", f"body is not JSON: {exc}"))
        if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
            return _v2_errors(OpError("invalid", "batch", "body must be an object with a batch list"))
        ops = payload["batch"]
        invalid = {index: validate_op(op) for index, op in enumerate(ops)}
        errors = []
        with self._lock:
            self._batch_operations += len(ops)
            for index, op in enumerate(ops):
                error = invalid[index] or self._workspace.apply(op)
                if error is not None:
                    errors.append(error.as_dict(index))
        if errors:
            return json_response(207, {"errors": errors})
        return json_response(200, {})

    # inspection

    def people(self):
        """Every live person: ``{cio_id, id, email, phone, attributes, created, updated_count}``.

        ``created`` is True for people created by an identify, False for people
        created implicitly by an event.
        """
        with self._lock:
            return copy.deepcopy(list(self._workspace.people.values()))

    def person(self, id=None, email=None, cio_id=None):
        """The live person with that identifier (email is case-insensitive), or None."""
        kind, value = next(((k, v) for k, v in (("id", id), ("email", email), ("cio_id", cio_id))
                            if v is not None), (None, None))
        if kind is None:
            raise ValueError("give one of id, email or cio_id")
        with self._lock:
            return copy.deepcopy(self._workspace.find(kind, value))

    def events(self, person_id=None, name=None):
        """Stored person events ``{person_cio_id, person_id, name, type, id, timestamp, attributes}``."""
        with self._lock:
            return [copy.deepcopy(event) for event in self._workspace.events
                    if (person_id is None or event["person_id"] == str(person_id))
                    and (name is None or event["name"] == name)]

    def anonymous_events(self):
        """Stored anonymous events ``{anonymous_id, name, type, id, timestamp, attributes}``."""
        with self._lock:
            return copy.deepcopy(self._workspace.anonymous_events)

    def deleted(self):
        """People removed by delete, suppress or merge (merged ones carry ``merged_into``)."""
        with self._lock:
            return copy.deepcopy(self._workspace.deleted)

    def suppressed(self):
        """Suppressed identifiers as ``[kind, value]`` pairs (emails lower-cased)."""
        with self._lock:
            return sorted([list(pair) for pair in self._workspace.suppressed])

    def max_requests_in_window(self, seconds=1.0):
        """Most /api requests (accepted or not) received within any ``seconds``-long window."""
        with self._lock:
            times = self._api_times.tolist()
        return max_in_window(times, seconds)

    def stats(self):
        """Base counts plus throttled, duplicate_events, batch_operations and skipped/dropped counters."""
        stats = super().stats()
        with self._lock:
            counters = self._workspace.counters
            stats.update(
                throttled=self._throttled,
                duplicate_events=counters["duplicate_events"],
                batch_operations=self._batch_operations,
                skipped_updates=counters["skipped_updates"],
                skipped_merges=counters["skipped_merges"],
                dropped_operations=counters["dropped_operations"],
            )
        return stats

    def state(self, include_requests=True):
        state = super().state(include_requests)
        state.update(
            people=self.people(), events=self.events(), anonymous_events=self.anonymous_events(),
            deleted=self.deleted(), suppressed=self.suppressed(),
            max_requests_in_window=self.max_requests_in_window(),
        )
        return state

    def control_handlers(self):
        handlers = super().control_handlers()
        handlers[("POST", "/_fake/credentials")] = self._control_credentials
        handlers[("POST", "/_fake/rate_limit")] = self._control_rate_limit
        return handlers

    def _control_credentials(self, request):
        body = request.json()
        self.set_credentials(body["site_id"], body["api_key"])
        return json_response(200, {"ok": True})

    def _control_rate_limit(self, request):
        self.set_rate_limit(request.json().get("rate_limit"))
        return json_response(200, {"ok": True})


def _v1_errors(*messages):
    return json_response(400, {"meta": {"errors": list(messages)}})


def _v2_errors(error):
    return json_response(400, {"errors": [error.as_dict()]})


def _v1_object(request):
    """The v1 body as an object (an empty body is ``{}``), or a 400 response."""
    try:
        body = request.json()
    except InvalidJSON as exc:
        return None, _v1_errors(f"body is not JSON: {exc}")
    if body is None:
        return {}, None
    if not isinstance(body, dict):
        return None, _v1_errors("body must be a JSON object")
    return body, None


def main(argv=None):
    """Process mode entry point."""
    parser = base_arg_parser("Fake Customer.io Track API")
    parser.add_argument("--site-id", default="site", help="accepted Basic-auth user (default 'site')")
    parser.add_argument("--api-key", default="key", help="accepted Basic-auth password (default 'key')")
    parser.add_argument("--rate-limit", type=float, default=None, help="requests per second (default none)")
    parser.add_argument("--region", default="us", choices=("us", "eu"))
    args = parser.parse_args(argv)
    fake = FakeCustomerIO(args.site_id, args.api_key, rate_limit=args.rate_limit, region=args.region,
                          host=args.host, port=args.port)
    run_until_signalled(fake, args.log_level)


if __name__ == "__main__":
    main()
