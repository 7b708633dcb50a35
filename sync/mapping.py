"""Pure outgoing mapping: Hull `user:update` messages → Customer.io v2 operations.

Everything here is a function of its arguments (no ORM, no HTTP, no settings), so the
whole decision table of DESIGN §5.1 is tested from literal payloads. The services layer
loads the connector configuration and the SyncState row, calls `decide`, sends
`operations_for(decision)` and writes back `writeback_traits` / `deletion_traits`.
"""
import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from .timeparse import MIN_TIME, iso_utc, parse_time, to_unix, unix_milliseconds, unix_seconds
from .ulid import ulid_from_event_id

ACTIONS = ("insert", "update", "events", "delete", "anonymous_events", "skip", "error")

REASON_STALE = "Message is older than the last processed update for this user (stale); skipped."
REASON_STALE_EVENTS = "Message is older than the last processed update: attributes skipped, its events sent."
REASON_NO_EMAIL = "User doesn't have an email address and will not be synchronized to customer.io"
REASON_NOT_IN_SEGMENTS = "User is not in the whitelisted segments and will not be synchronized to customer.io"
REASON_ALREADY_DELETED = "User was already deleted"
REASON_NO_ID_VALUE = ("User doesn't have a value for the attribute which is mapped to the identifier "
                      "in customer.io.")
REASON_NO_CHANGES = ("The contact in customer.io is already in synchronization with the user in Hull. "
                     "No changes to process.")
REASON_NO_DELETE_ADDRESS = ("User left the whitelisted segments but no customer.io identifier is known for "
                            "them, so they cannot be deleted.")
REASON_EVENTS_NOT_WHITELISTED = ("The following events are not whitelisted and have been skipped "
                                 "for processing.")
REASON_INVALID_PREFIX = "Invalid user: "

MAX_ATTRIBUTES = 300
MAX_EVENT_NAME_BYTES = 100
MAX_EVENT_DATA_BYTES = 100_000
MAX_OPERATION_BYTES = 32 * 1024

WRITEBACK_PREFIXES = ("traits_customerio/", "customerio/")
RESERVED_ATTRIBUTES = frozenset({"id", "email", "created_at", "hull_segments"})
DATE_SUFFIXES = ("_at", "_date")

# Room for the identify envelope around the attributes: type, action, identifiers (≤ 150-byte
# values once valid, plus the new identifier key on a change) and timestamp.
_IDENTIFY_OVERHEAD = 512
_PREVIEW_CHARS = 40


@dataclass(frozen=True)
class SyncConfig:
    """The connector settings the mapping needs (manifest names, DESIGN §4.4)."""

    synchronized_segments: frozenset
    enable_user_deletion: bool
    events_filter: frozenset
    anonymous_events: bool
    user_id_mapping: str
    synchronized_attributes: tuple
    max_attribute_name_length: int = 150
    max_attribute_value_length: int = 1000
    max_identifier_value_length: int = 150

    @property
    def identifier_type(self) -> str:
        """The v2 identifier key: "email" when people are keyed by email, else "id"."""
        return "email" if self.user_id_mapping == "email" else "id"


@dataclass(frozen=True)
class KnownState:
    """What our SyncState row says about one user (the caller passes None when there is no row)."""

    customerio_id: str
    cio_id: str
    payload_hash: str
    deleted: bool
    last_indexed_at: datetime | None


@dataclass
class Decision:
    """What to do for one Hull user, with everything needed to do it and to log it."""

    hull_user_id: str
    email: str | None
    external_id: str | None
    action: str
    reason: str = ""
    identifier: str | None = None
    identifier_type: str = "id"
    address: dict | None = None
    attributes: dict = field(default_factory=dict)
    payload_hash: str = ""
    created_at: int | None = None
    event_ops: list = field(default_factory=list)
    anonymous_events: list = field(default_factory=list)
    skipped_events: list = field(default_factory=list)
    event_ids: list = field(default_factory=list)
    violations: list = field(default_factory=list)
    indexed_at: datetime | None = None
    previous_identifier: str | None = None


@dataclass(frozen=True)
class _KnownPerson:
    """Whether and how the person exists in Customer.io, from SyncState or legacy traits."""

    exists: bool
    deleted: bool
    identifier: str | None
    cio_id: str | None
    payload_hash: str | None


# --- configuration -------------------------------------------------------------------------

def config_from_settings(settings: dict) -> SyncConfig:
    """Build a SyncConfig from manifest-named settings, applying the manifest defaults."""
    settings = settings if isinstance(settings, dict) else {}
    attributes = _string_list(settings.get("synchronized_attributes"))
    return SyncConfig(
        synchronized_segments=frozenset(_string_list(settings.get("synchronized_segments"))),
        enable_user_deletion=_flag(settings.get("enable_user_deletion")),
        events_filter=frozenset(_string_list(settings.get("events_filter"))),
        anonymous_events=_flag(settings.get("anonymous_events")),
        user_id_mapping=str(settings.get("user_id_mapping") or "external_id").strip() or "external_id",
        synchronized_attributes=tuple(dict.fromkeys(attributes)),
        max_attribute_name_length=_positive_int(settings.get("max_attribute_name_length"), 150),
        max_attribute_value_length=_positive_int(settings.get("max_attribute_value_length"), 1000),
        max_identifier_value_length=_positive_int(settings.get("max_identifier_value_length"), 150),
    )


def _string_list(value) -> list:
    """A settings list as non-empty strings (Hull stores "" for unset pickers)."""
    if value is None or value == "":
        return []
    items = [value] if isinstance(value, str) else value if isinstance(value, (list, tuple, set)) else []
    return [str(item) for item in items if item not in (None, "")]


def _flag(value) -> bool:
    """A settings boolean; strings such as "true"/"false" are read as words, not truthiness."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def _positive_int(value, default: int) -> int:
    """A positive integer setting, or `default` when unset or unusable."""
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return default
    return number if number > 0 else default


# --- messages ------------------------------------------------------------------------------

def merge_messages(messages: list[dict]) -> list[dict]:
    """One message per Hull user: the latest `user.indexed_at` wins, events of all are unioned.

    Events are de-duplicated by `event_id` (first occurrence kept) and sorted by their
    `created_at`. Messages without a user id are dropped. Users come out in order of
    first appearance.
    """
    latest, events = {}, {}
    for message in messages if isinstance(messages, list) else []:
        user_id = message_user_id(message)
        if user_id is None:
            continue
        current = latest.get(user_id)
        if current is None or _indexed_at(message) >= _indexed_at(current):
            latest[user_id] = message
        bucket = events.setdefault(user_id, {})
        for event in _events(message):
            bucket.setdefault(_event_key(event), event)
    return [{**message, "events": _sorted_events(events[user_id].values())} for user_id, message in latest.items()]


def message_user_id(message) -> str | None:
    """The Hull user id of a message as a string (Hull ids are strings; numbers are tolerated)."""
    return _scalar_str(_user(message).get("id"))


def _user(message) -> dict:
    """The message's user object, {} when absent or malformed."""
    user = message.get("user") if isinstance(message, dict) else None
    return user if isinstance(user, dict) else {}


def _events(message) -> list:
    """The message's events that are objects."""
    events = message.get("events") if isinstance(message, dict) else None
    return [event for event in events if isinstance(event, dict)] if isinstance(events, list) else []


def _indexed_at(message) -> datetime:
    """`user.indexed_at` for ordering; a missing one sorts first."""
    return parse_time(_user(message).get("indexed_at")) or MIN_TIME


def _sorted_events(events) -> list:
    """Events by creation time; ties (and unknown times, first) keep their order."""
    return sorted(events, key=lambda event: parse_time(event.get("created_at")) or MIN_TIME)


def _scalar_str(value) -> str | None:
    """A non-empty string for a string or number, else None (booleans and objects are not ids)."""
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, float):
        return str(value) if math.isfinite(value) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


# --- attributes ----------------------------------------------------------------------------

@lru_cache(maxsize=4096)
def attribute_name(flat_name: str) -> str:
    """Customer.io name of a flat Hull attribute (`traits_a/b` → `a-b`, `account.x` → `account_x`, `id` → `hull_id`)."""
    if flat_name == "id":
        return "hull_id"
    if flat_name.startswith("account."):
        return "account_" + flat_name[len("account."):].replace("/", "-")
    if flat_name.startswith("traits_"):
        flat_name = flat_name[len("traits_"):]
    return flat_name.replace("/", "-")


def is_writeback_attribute(flat_name: str) -> bool:
    """True for the `customerio/*` traits this connector writes; mapping them would loop forever."""
    return flat_name.startswith(WRITEBACK_PREFIXES)


def read_attribute(message: dict, flat_name: str):
    """Value of a flat attribute: `account.<x>` from `message["account"]`, anything else from the user."""
    if flat_name.startswith("account."):
        return _account(message).get(flat_name[len("account."):])
    return _user(message).get(flat_name)


def _account(message) -> dict:
    """The message's account object, {} when absent or malformed."""
    account = message.get("account") if isinstance(message, dict) else None
    return account if isinstance(account, dict) else {}


def identifier_value(message: dict, config: SyncConfig) -> str | None:
    """The Customer.io identifier: the value at `user_id_mapping` as a string, None when missing."""
    return _scalar_str(read_attribute(message, config.user_id_mapping))


@lru_cache(maxsize=256)
def _attribute_plan(synchronized_attributes: tuple) -> tuple:
    """(from account?, key to read, Customer.io name, is a date key?) per attribute, once per configuration.

    Write-back traits are dropped, and so are names that would overwrite the attributes
    the connector sets itself (`id`, `email`, `created_at`, `hull_segments`).
    """
    plan = []
    for flat_name in synchronized_attributes:
        name = attribute_name(flat_name)
        if is_writeback_attribute(flat_name) or name in RESERVED_ATTRIBUTES:
            continue
        from_account = flat_name.startswith("account.")
        key = flat_name[len("account."):] if from_account else flat_name
        plan.append((from_account, key, name, name.endswith(DATE_SUFFIXES)))
    return tuple(plan)


def person_attributes(message: dict, config: SyncConfig) -> dict:
    """Customer.io person attributes of the message's user (DESIGN §5.1.3)."""
    user = _user(message)
    attributes = {}
    identifier = identifier_value(message, config)
    if identifier is not None and config.identifier_type != "email":
        attributes["id"] = identifier
    if user.get("email") is not None:
        attributes["email"] = user["email"]
    created_at = to_unix(user.get("created_at"))
    if created_at is not None:
        attributes["created_at"] = created_at
    attributes["hull_segments"] = segment_names(message)
    account = _account(message)
    for from_account, key, name, is_date in _attribute_plan(tuple(config.synchronized_attributes)):
        value = (account if from_account else user).get(key)
        if value is not None:
            attributes[name] = _date_to_unix(value) if is_date else value
    return attributes


def _date_to_unix(value):
    """A date string as integer unix seconds; anything else (numbers included) unchanged."""
    if isinstance(value, str):
        seconds = to_unix(value)
        if seconds is not None:
            return seconds
    return value


def segment_names(message: dict) -> list:
    """Sorted, unique names of the user's segments (sorted so the hash ignores Hull's ordering)."""
    segments = message.get("segments") if isinstance(message, dict) else None
    if not isinstance(segments, list):
        return []
    return sorted({segment["name"] for segment in segments
                   if isinstance(segment, dict) and isinstance(segment.get("name"), str)})


def segment_ids(message: dict) -> set:
    """Ids of the user's segments: `message.segments[].id`, `user.segment_ids` and `message.segment_ids`."""
    ids = set()
    segments = message.get("segments") if isinstance(message, dict) else None
    for segment in segments if isinstance(segments, list) else []:
        if isinstance(segment, dict):
            ids.add(_scalar_str(segment.get("id")))
    listed = [_user(message).get("segment_ids"), message.get("segment_ids") if isinstance(message, dict) else None]
    for segment_list in listed:
        for segment_id in segment_list if isinstance(segment_list, list) else []:
            ids.add(_scalar_str(segment_id))
    ids.discard(None)
    return ids


# --- hashing and validation ----------------------------------------------------------------

def _canonical_json(value) -> bytes:
    """Canonical UTF-8 JSON: sorted keys, compact separators, non-ASCII kept."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return text.encode("utf-8", "surrogatepass")


def attributes_hash(attributes: dict) -> str:
    """SHA-1 hex of the canonical JSON of the attributes (independent of key order)."""
    return hashlib.sha1(_canonical_json(attributes)).hexdigest()


def _byte_len(text: str) -> int:
    """UTF-8 length of a string."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _value_bytes(value) -> int:
    """Size Customer.io counts for a value: UTF-8 for strings, compact JSON for anything else."""
    kind = type(value)
    if kind is str:
        return _byte_len(value)
    if kind is int:
        return len(str(value))
    if value is None or kind is bool:
        return len(json.dumps(value))
    return len(_canonical_json(value))


def _preview(text: str) -> str:
    """A name or value short enough to quote in a reason."""
    return text if len(text) <= _PREVIEW_CHARS else text[:_PREVIEW_CHARS] + "…"


def validate_person(identifier: str | None, attributes: dict, config: SyncConfig) -> list[str]:
    """Every Customer.io limit the person breaks (identifier, attribute names and values, count)."""
    violations = []
    size = _byte_len(identifier) if isinstance(identifier, str) else 0
    if size > config.max_identifier_value_length:
        violations.append(f"identifier '{_preview(identifier)}' is {size} bytes "
                          f"(max {config.max_identifier_value_length})")
    if len(attributes) > MAX_ATTRIBUTES:
        violations.append(f"{len(attributes)} attributes (max {MAX_ATTRIBUTES})")
    for name, value in attributes.items():
        size = _byte_len(name)
        if size > config.max_attribute_name_length:
            violations.append(f"attribute name '{_preview(name)}' is {size} bytes "
                              f"(max {config.max_attribute_name_length})")
        size = _value_bytes(value)
        if size > config.max_attribute_value_length:
            violations.append(f"attribute '{_preview(name)}' value is {size} bytes "
                              f"(max {config.max_attribute_value_length})")
    return violations


def validate_operation_size(operation: dict, label: str) -> list[str]:
    """A violation when the encoded v2 operation is over Customer.io's 32 KB per operation."""
    size = len(_canonical_json(operation))
    if size > MAX_OPERATION_BYTES:
        return [f"{label} is {size} bytes (max {MAX_OPERATION_BYTES})"]
    return []


# --- events --------------------------------------------------------------------------------

def event_ulid(event_id: str, created_at) -> str:
    """Deterministic ULID of a Hull event: its time (0 when unknown) + 80 bits of sha256(event_id)."""
    return ulid_from_event_id(event_id, unix_milliseconds(parse_time(created_at)))


def _event_key(event: dict) -> str:
    """The Hull `event_id`, or a digest of the event when Hull sent none."""
    event_id = _scalar_str(event.get("event_id"))
    return event_id if event_id is not None else hashlib.sha1(_canonical_json(event)).hexdigest()


def _event_parts(event: dict) -> tuple:
    """(action, name, properties) of a Hull event; `page` becomes a page view named by its URL."""
    properties = event.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    name = event.get("event")
    if name != "page":
        return "event", "" if name is None else str(name), properties
    context = event.get("context")
    page = context.get("page") if isinstance(context, dict) else None
    url = properties.get("url") or (page.get("url") if isinstance(page, dict) else None)
    return "page", str(url) if url else "page", properties


def event_operation(event: dict, identifiers: dict) -> dict:
    """The v2 person `event` (or `page`) operation for a Hull event."""
    action, name, properties = _event_parts(event)
    created = parse_time(event.get("created_at"))
    operation = {"type": "person", "action": action, "identifiers": identifiers, "name": name,
                 "id": ulid_from_event_id(_event_key(event), unix_milliseconds(created)), "attributes": properties}
    if created is not None:
        operation["timestamp"] = unix_seconds(created)
    return operation


def anonymous_event_body(event: dict, anonymous_id: str) -> dict:
    """The v1 `POST /api/v1/events` body for a Hull event of a user Customer.io cannot identify."""
    action, name, properties = _event_parts(event)
    created = parse_time(event.get("created_at"))
    body = {"name": name, "anonymous_id": anonymous_id, "data": properties,
            "id": ulid_from_event_id(_event_key(event), unix_milliseconds(created))}
    if created is not None:
        body["timestamp"] = unix_seconds(created)
    if action == "page":
        body["type"] = "page"
    return body


def validate_event(operation: dict) -> list[str]:
    """Every limit a v2 event/page operation or a v1 anonymous event body breaks."""
    name = str(operation.get("name", ""))
    violations = []
    size = _byte_len(name)
    if size > MAX_EVENT_NAME_BYTES:
        violations.append(f"event '{_preview(name)}' name is {size} bytes (max {MAX_EVENT_NAME_BYTES})")
    encoded = len(_canonical_json(operation))
    if encoded > MAX_EVENT_DATA_BYTES:
        data = operation.get("attributes", operation.get("data"))
        size = len(_canonical_json(data))
        if size > MAX_EVENT_DATA_BYTES:
            violations.append(f"event '{_preview(name)}' data is {size} bytes (max {MAX_EVENT_DATA_BYTES})")
    if operation.get("type") == "person" and encoded > MAX_OPERATION_BYTES:
        violations.append(f"event '{_preview(name)}' operation is {encoded} bytes (max {MAX_OPERATION_BYTES})")
    return violations


def _split_events(message: dict, config: SyncConfig) -> tuple:
    """(whitelisted events, names of the other events)."""
    whitelisted, skipped = [], []
    for event in _events(message):
        name = event.get("event")
        if isinstance(name, str) and name in config.events_filter:
            whitelisted.append(event)
        else:
            skipped.append("" if name is None else str(name))
    return whitelisted, skipped


def anonymous_id(message: dict) -> str | None:
    """The user's anonymous id: first of `user.anonymous_ids`, else the first event's `anonymous_id`."""
    anonymous_ids = _user(message).get("anonymous_ids")
    for candidate in anonymous_ids if isinstance(anonymous_ids, list) else []:
        if _scalar_str(candidate) is not None:
            return _scalar_str(candidate)
    for event in _events(message):
        if _scalar_str(event.get("anonymous_id")) is not None:
            return _scalar_str(event.get("anonymous_id"))
    return None


# --- decision ------------------------------------------------------------------------------

def decide(message: dict, config: SyncConfig, state: KnownState | None = None) -> Decision:
    """Decide what to do for one (merged) message; first matching rule of DESIGN §5.1.2 wins."""
    user = _user(message)
    decision = _base_decision(message, config)
    if _is_stale(decision, state):
        return _stale(decision, message, config, state)
    if decision.email is None:
        return _skip(decision, REASON_NO_EMAIL)
    known = _known_person(user, state)
    if segment_ids(message).isdisjoint(config.synchronized_segments):
        return _outside_segments(decision, config, known)
    if decision.identifier is None:
        return _without_identifier(decision, message, config)
    return _sync_person(decision, message, config, known)


def _base_decision(message: dict, config: SyncConfig) -> Decision:
    """A decision carrying the user's ids, not yet decided."""
    user = _user(message)
    email = user.get("email")
    return Decision(
        hull_user_id=_scalar_str(user.get("id")) or "",
        email=email if isinstance(email, str) and email.strip() else None,
        external_id=_scalar_str(user.get("external_id")),
        action="skip",
        identifier=identifier_value(message, config),
        identifier_type=config.identifier_type,
        indexed_at=parse_time(user.get("indexed_at")),
    )


def _is_stale(decision: Decision, state: KnownState | None) -> bool:
    """True when the message is older than the newest one already processed for this user."""
    last = parse_time(state.last_indexed_at) if state is not None else None
    return last is not None and decision.indexed_at is not None and decision.indexed_at < last


def _stale(decision: Decision, message: dict, config: SyncConfig, state: KnownState) -> Decision:
    """Rule 0: the attributes are outdated, but its events still happened: send them to the known person."""
    _skip(decision, REASON_STALE)
    if not state.customerio_id or state.deleted or decision.email is None:
        return decision
    decision.identifier = state.customerio_id
    _attach_events(decision, message, config)
    if decision.event_ops:
        decision.action, decision.reason = "events", REASON_STALE_EVENTS
    return decision


def _skip(decision: Decision, reason: str) -> Decision:
    """Mark the decision as a skip with its human reason."""
    decision.action, decision.reason = "skip", reason
    return decision


def _known_person(user: dict, state: KnownState | None) -> _KnownPerson:
    """How the person exists in Customer.io: our SyncState when it knows, else the legacy traits.

    A row that never synced (no customerio_id, not deleted) says nothing about people the
    old connector created, so the `traits_customerio/*` traits are used then too.
    """
    if state is not None and (state.customerio_id or state.deleted):
        return _KnownPerson(exists=bool(state.customerio_id) and not state.deleted, deleted=state.deleted,
                            identifier=state.customerio_id or None, cio_id=state.cio_id or None,
                            payload_hash=state.payload_hash or None)
    created_at = user.get("traits_customerio/created_at")
    deleted_at = user.get("traits_customerio/deleted_at")
    return _KnownPerson(exists=created_at not in (None, "") and deleted_at in (None, ""),
                        deleted=deleted_at not in (None, ""),
                        identifier=_scalar_str(user.get("traits_customerio/id")),
                        cio_id=(state.cio_id or None) if state is not None else None,
                        payload_hash=_scalar_str(user.get("traits_customerio/hash")))


def _outside_segments(decision: Decision, config: SyncConfig, known: _KnownPerson) -> Decision:
    """Rule 2: delete the person when deletion is on and they exist, else skip."""
    if not config.enable_user_deletion:
        return _skip(decision, REASON_NOT_IN_SEGMENTS)
    if known.exists:
        identifier = known.identifier or decision.identifier
        if known.cio_id is None and identifier is None:
            decision.action, decision.reason = "error", REASON_NO_DELETE_ADDRESS
            return decision
        decision.action, decision.identifier = "delete", identifier
        decision.address = {"cio_id": known.cio_id} if known.cio_id else {decision.identifier_type: identifier}
        return decision
    return _skip(decision, REASON_ALREADY_DELETED if known.deleted else REASON_NOT_IN_SEGMENTS)


def _without_identifier(decision: Decision, message: dict, config: SyncConfig) -> Decision:
    """Rule 3: send whitelisted events anonymously when enabled and possible, else skip."""
    whitelisted, decision.skipped_events = _split_events(message, config)
    anonymous = anonymous_id(message) if config.anonymous_events else None
    if anonymous is None:
        return _skip(decision, REASON_NO_ID_VALUE)
    for event in whitelisted:
        body = anonymous_event_body(event, anonymous)
        violations = validate_event(body)
        decision.violations.extend(violations)
        if not violations:
            decision.anonymous_events.append(body)
            decision.event_ids.append(_scalar_str(event.get("event_id")) or "")
    if decision.anonymous_events:
        decision.action = "anonymous_events"
        return decision
    return _skip(decision, REASON_NO_ID_VALUE)


def _sync_person(decision: Decision, message: dict, config: SyncConfig, known: _KnownPerson) -> Decision:
    """Rules 4-5: attributes, validation, events, then insert / update / events / skip."""
    attributes = person_attributes(message, config)
    payload = _canonical_json(attributes)
    decision.attributes, decision.created_at = attributes, attributes.get("created_at")
    decision.payload_hash = hashlib.sha1(payload).hexdigest()
    decision.address = {decision.identifier_type: decision.identifier}
    if _unchanged_without_events(decision, message, config, known):
        return _skip(decision, REASON_NO_CHANGES)
    violations = validate_person(decision.identifier, attributes, config)
    if len(payload) + _IDENTIFY_OVERHEAD > MAX_OPERATION_BYTES:
        violations += validate_operation_size(identify_operation(decision), "identify operation")
    if violations:
        decision.action, decision.violations = "error", violations
        decision.reason = REASON_INVALID_PREFIX + "; ".join(violations)
        return decision
    _attach_events(decision, message, config)
    return _classify(decision, known)


def _unchanged_without_events(decision: Decision, message: dict, config: SyncConfig, known: _KnownPerson) -> bool:
    """The common case, decided before validating: same person, same attributes, no whitelisted event.

    What was sent before was valid then, so there is nothing to check or send.
    """
    return (known.exists and known.payload_hash == decision.payload_hash
            and known.identifier in (None, decision.identifier)
            and not any(event.get("event") in config.events_filter for event in _events(message)))


def _attach_events(decision: Decision, message: dict, config: SyncConfig) -> None:
    """Add the valid whitelisted events as v2 operations; list the rest as skipped or violations."""
    whitelisted, decision.skipped_events = _split_events(message, config)
    for event in whitelisted:
        operation = event_operation(event, {decision.identifier_type: decision.identifier})
        violations = validate_event(operation)
        decision.violations.extend(violations)
        if not violations:
            decision.event_ops.append(operation)
            decision.event_ids.append(_scalar_str(event.get("event_id")) or "")


def _classify(decision: Decision, known: _KnownPerson) -> Decision:
    """Rule 5: insert a new person, update (possibly re-keying), send events only, or skip."""
    if not known.exists:
        decision.action = "insert"
    elif known.identifier is not None and known.identifier != decision.identifier:
        decision.action, decision.previous_identifier = "update", known.identifier
        decision.address = {"cio_id": known.cio_id} if known.cio_id else {decision.identifier_type: known.identifier}
    elif known.payload_hash == decision.payload_hash:
        if not decision.event_ops:
            return _skip(decision, REASON_NO_CHANGES)
        decision.action = "events"
    else:
        decision.action = "update"
    return decision


# --- operations and write-back -------------------------------------------------------------

def identify_operation(decision: Decision) -> dict:
    """The v2 `identify` for an insert/update; on an identifier change it also sets the new identifier."""
    natural = {decision.identifier_type: decision.identifier}
    address = decision.address or natural
    attributes = decision.attributes
    if address != natural:
        attributes = {**attributes, decision.identifier_type: decision.identifier}
    operation = {"type": "person", "action": "identify", "identifiers": address, "attributes": attributes}
    timestamp = unix_seconds(decision.indexed_at)
    if timestamp is not None:
        operation["timestamp"] = timestamp
    return operation


def delete_operation(decision: Decision) -> dict:
    """The v2 `delete` of the person, addressed the way Customer.io knows them."""
    return {"type": "person", "action": "delete", "identifiers": decision.address}


def operations_for(decision: Decision) -> list[dict]:
    """The v2 operations that carry out a decision, in sending order."""
    if decision.action in ("insert", "update"):
        return [identify_operation(decision), *decision.event_ops]
    if decision.action == "events":
        return list(decision.event_ops)
    if decision.action == "delete":
        return [delete_operation(decision)]
    return []


def writeback_traits(decision: Decision, synced_at: datetime) -> dict:
    """Hull traits (source `customerio`, prefix added by the Hull client) after a successful identify."""
    return {"id": decision.identifier, "created_at": decision.created_at, "hash": decision.payload_hash,
            "synced_at": iso_utc(synced_at), "deleted_at": None}


def deletion_traits(deleted_at: datetime) -> dict:
    """Hull traits (source `customerio`) after the person was deleted in Customer.io."""
    return {"deleted_at": iso_utc(deleted_at), "id": None, "hash": None, "synced_at": None, "created_at": None}
