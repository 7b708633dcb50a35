"""Outgoing sync services: Hull user:update messages → Customer.io people and events."""
import hashlib
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from .customerio import CustomerIOClient
from .db import bulk_insert, bulk_insert_rows, bulk_update
from .exceptions import ConfigurationError
from .hull import HullClient, user_claims
from .mapping import (
    Decision,
    KnownState,
    config_from_settings,
    decide,
    merge_messages,
    message_user_id,
    operations_for,
)
from .models import SyncLog, SyncState

logger = logging.getLogger(__name__)

SETTING_NAMES = (
    "synchronized_segments", "enable_user_deletion", "events_filter", "anonymous_events", "user_id_mapping",
    "synchronized_attributes", "max_attribute_name_length", "max_attribute_value_length",
    "max_identifier_value_length",
)
WRITEBACK_BATCH = 500
# What a write-back reads of a pending row: the user's claims and the customerio/* traits.
WRITEBACK_FIELDS = ("hull_user_id", "email", "external_id", "customerio_id", "customerio_created_at", "payload_hash",
                    "synced_at", "deleted_at", "writeback_seq")
MAX_USER_ID_LENGTH = SyncState._meta.get_field("hull_user_id").max_length
TOUCH_FIELDS = ["email", "external_id", "last_indexed_at", "last_outcome", "last_reason", "updated_at"]
STATE_FIELDS = [
    "email", "external_id", "customerio_id", "payload_hash", "last_payload", "customerio_created_at", "synced_at",
    "deleted_at", "last_indexed_at", "last_outcome", "last_reason", "writeback_pending", "writeback_seq",
    "updated_at",
]


@dataclass
class SyncSummary:
    """What one call of users_sync did; retry_reason is set when some users must be tried again."""

    users: int = 0
    outcomes: Counter = field(default_factory=Counter)
    operations: int = 0
    retry_reason: str = ""
    writeback: bool = False


def sync_config(connector):
    return config_from_settings({name: getattr(connector, name) for name in SETTING_NAMES})


def customerio_client(connector):
    if not connector.has_customerio_credentials:
        raise ConfigurationError("Missing Credentials: Site ID or API Key are not configured in Settings.")
    return CustomerIOClient(connector.track_url, connector.site_id, connector.api_key,
                            connector.rate_limit_per_second, pace_key=f"{connector.pk}:{connector.site_id}")


def hull_client(connector):
    if not connector.hull_secret:
        raise ConfigurationError("The Hull connector secret is not configured.")
    return HullClient(connector.hull_id, connector.hull_secret, connector.hull_base_url, connector.firehose_url)


def known_state(state):
    """Our row as the decision rules see them (a row that never synced defers to legacy traits)."""
    return KnownState(customerio_id=state.customerio_id, cio_id=state.cio_id, payload_hash=state.payload_hash,
                      deleted=state.deleted_at is not None, last_indexed_at=state.last_indexed_at)


def _user_lock_key(connector_id, user_id):
    digest = hashlib.blake2b(f"{connector_id}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def users_lock(connector, user_ids):
    """Serialize work on these users across workers until the transaction ends.

    PostgreSQL advisory locks, all taken in one statement in key order, so two workers with
    overlapping users queue instead of deadlocking. SQLite already runs one writer at a time.
    """
    if connection.vendor != "postgresql":
        return
    keys = sorted({_user_lock_key(connector.pk, uid) for uid in user_ids})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k", [keys])


def states_lock(connector, user_ids):
    """Lock the users (see users_lock) and return their SyncState rows.

    Users seen for the first time get a new, unsaved row: `_Recorder.save` inserts those with the
    rest of the batch, so a new user costs one row written instead of an insert, a re-read and an update.
    """
    users_lock(connector, user_ids)
    query = SyncState.objects.filter(connector=connector, hull_user_id__in=user_ids).defer("last_payload")
    states = {s.hull_user_id: s for s in query}
    for uid in user_ids:
        if uid not in states:
            states[uid] = SyncState(connector=connector, hull_user_id=uid)
    return states


def users_sync(connector, messages, source=""):
    """Decide, send and record a notification's messages; the caller owns retries."""
    if connector.credentials_rejected_at:
        raise ConfigurationError("Customer.io rejected the credentials; outgoing sync is paused until they are fixed.")
    client = customerio_client(connector)
    config = sync_config(connector)
    merged, unusable = _split_user_ids(merge_messages(messages))
    summary = SyncSummary(users=len(merged) + len(unusable))
    with transaction.atomic():
        user_ids = [message_user_id(m) for m in merged]
        states = states_lock(connector, user_ids)
        decisions = [decide(m, config, known_state(states[uid])) for m, uid in zip(merged, user_ids)]
        decisions += [_unusable_id_decision(m) for m in unusable]
        delivery = _deliver(client, decisions)
        summary.operations = delivery.operations
        recorder = _Recorder(connector, states, source, summary)
        for decision, results in zip(decisions, delivery.results):
            recorder.record(decision, results)
        recorder.save()
    return summary


def _split_user_ids(messages):
    """Messages whose Hull user id fits our column, and the others (reported, not synced)."""
    usable, unusable = [], []
    for message in messages:
        (usable if len(message_user_id(message)) <= MAX_USER_ID_LENGTH else unusable).append(message)
    return usable, unusable


def _unusable_id_decision(message):
    user_id = message_user_id(message)
    email = message["user"].get("email")
    return Decision(hull_user_id=user_id[:MAX_USER_ID_LENGTH], email=email if isinstance(email, str) else None,
                    external_id=None, action="error",
                    reason=f"Hull user id is {len(user_id)} characters long (max {MAX_USER_ID_LENGTH}); not synced.")


@dataclass
class _Delivery:
    results: list
    operations: int = 0


def _deliver(client, decisions):
    """Send every decision's operations in shared batches; results grouped back per decision."""
    operations, owners = [], []
    for position, decision in enumerate(decisions):
        for op in operations_for(decision):
            operations.append(op)
            owners.append(position)
    grouped = [[] for _ in decisions]
    if operations:
        for owner, result in zip(owners, client.batch(operations)):
            grouped[owner].append(result)
    for position, decision in enumerate(decisions):
        if decision.action == "anonymous_events":
            grouped[position] = [client.anonymous_event(body) for body in decision.anonymous_events]
    return _Delivery(results=grouped, operations=len(operations))


class _Recorder:
    """Turns decisions and API results into SyncState changes and SyncLog rows, written in bulk."""

    def __init__(self, connector, states, source, summary):
        self.connector, self.states, self.source, self.summary = connector, states, source, summary
        self.logs = []
        self.changed = []
        self.synced = set()
        self.now = timezone.now()

    def log(self, decision, action, reason="", data=None, result=None, event_id=""):
        direction, outcome = action.split(".")[0], action.rsplit(".", 1)[1]
        state = self.states.get(decision.hull_user_id)
        self.logs.append({
            "connector_id": self.connector.pk, "action": action, "direction": direction, "outcome": outcome,
            "hull_user_id": decision.hull_user_id or "", "email": (decision.email or "")[:320],
            "external_id": (decision.external_id or "")[:255],
            "customerio_id": (decision.identifier or (state.customerio_id if state else "") or "")[:255],
            "event_id": event_id[:100], "reason": reason, "data": data or {}, "source": self.source,
            "http_status": result.status if result else None,
            "duration_ms": result.duration_ms if result else None,
            "error": (result.error if result and not result.ok else ""),
        })

    def record(self, decision, results):
        retry = [r for r in results if r.retryable]
        if retry:
            self.summary.outcomes["retry"] += 1
            self.summary.retry_reason = retry[0].error
            return
        self.summary.outcomes[decision.action] += 1
        handler = getattr(self, f"_record_{decision.action}")
        handler(decision, results)

    def _touch(self, decision, outcome, reason=""):
        state = self.states.get(decision.hull_user_id)
        if state is None:  # a user id we could not store (see _split_user_ids)
            return None
        state.email = (decision.email or state.email)[:320]
        state.external_id = (decision.external_id or state.external_id)[:255]
        if decision.indexed_at and (state.last_indexed_at is None or decision.indexed_at > state.last_indexed_at):
            state.last_indexed_at = decision.indexed_at
        state.last_outcome, state.last_reason = outcome, reason
        self.changed.append(state)
        return state

    def _record_skip(self, decision, results):
        self._touch(decision, SyncState.Outcome.SKIP, decision.reason)
        self.log(decision, "outgoing.user.skip", decision.reason)

    def _record_error(self, decision, results):
        self._touch(decision, SyncState.Outcome.ERROR, decision.reason)
        self.log(decision, "outgoing.user.error", decision.reason,
                 data={"violations": decision.violations, "attributes": decision.attributes})

    def _record_insert(self, decision, results):
        person, events = results[0], results[1:]
        if not person.ok:
            reason = f"Customer.io refused the person: {person.error}"
            self._touch(decision, SyncState.Outcome.ERROR, reason)
            self.log(decision, "outgoing.user.error", reason, data={"attributes": decision.attributes}, result=person)
            return
        state = self._touch(decision, decision.action)
        state.customerio_id = decision.identifier or ""
        state.payload_hash = decision.payload_hash
        state.last_payload = decision.attributes
        state.customerio_created_at = decision.created_at
        state.synced_at, state.deleted_at = self.now, None
        self._writeback(state)
        self.log(decision, "outgoing.user.success", data={"attributes": decision.attributes,
                                                          "operation": decision.action}, result=person)
        self._record_events(decision, events)

    _record_update = _record_insert

    def _record_events(self, decision, results):
        if decision.action == "events":
            self._touch(decision, SyncState.Outcome.EVENTS, decision.reason or "Attributes unchanged; only events were sent.")
        if decision.violations:
            self.log(decision, "outgoing.event.error", "Events not sent: " + "; ".join(decision.violations))
        if decision.skipped_events:
            self.log(decision, "outgoing.event.skip",
                     "The following events are not whitelisted and have been skipped for processing.",
                     data={"events": decision.skipped_events})
        ops = decision.event_ops or decision.anonymous_events
        for op, event_id, result in zip(ops, decision.event_ids, results):
            action = "outgoing.event.success" if result.ok else "outgoing.event.error"
            self.log(decision, action, "" if result.ok else result.error, event_id=event_id,
                     data={"name": op.get("name"), "timestamp": op.get("timestamp")}, result=result)

    def _record_anonymous_events(self, decision, results):
        self._touch(decision, SyncState.Outcome.EVENTS, "No identifier; events sent as anonymous events.")
        self._record_events(decision, results)

    def _record_delete(self, decision, results):
        result = results[0]
        if not result.ok:
            reason = f"Customer.io refused the deletion: {result.error}"
            self._touch(decision, SyncState.Outcome.ERROR, reason)
            self.log(decision, "outgoing.user.error", reason, result=result)
            return
        state = self._touch(decision, SyncState.Outcome.DELETE)
        self.log(decision, "outgoing.user.deletion", data={"id": decision.identifier or state.customerio_id},
                 result=result)
        state.customerio_id, state.payload_hash, state.last_payload = "", "", {}
        state.customerio_created_at, state.synced_at, state.deleted_at = None, None, self.now
        self._writeback(state)

    def _writeback(self, state):
        self.synced.add(id(state))
        state.writeback_pending = True
        state.writeback_seq += 1
        self.summary.writeback = True

    def save(self):
        unique = list({id(s): s for s in self.changed}.values())
        for state in unique:
            state.updated_at = self.now
        bulk_insert(SyncState, [s for s in unique if s.pk is None])
        stored = [s for s in unique if s.pk is not None]
        bulk_update(SyncState, [s for s in stored if id(s) in self.synced], STATE_FIELDS)
        bulk_update(SyncState, [s for s in stored if id(s) not in self.synced], TOUCH_FIELDS)
        bulk_insert_rows(SyncLog, self.logs)


def _writeback_traits(state):
    if state.deleted_at is not None and not state.customerio_id:
        return {"deleted_at": state.deleted_at.isoformat(), "id": None, "hash": None, "synced_at": None,
                "created_at": None}
    return {"id": state.customerio_id, "created_at": state.customerio_created_at, "hash": state.payload_hash,
            "synced_at": state.synced_at.isoformat() if state.synced_at else None, "deleted_at": None}


def hull_writeback(connector, limit=WRITEBACK_BATCH):
    """Write pending customerio/* traits to Hull in firehose batches; returns how many users were written.

    Rows changed again meanwhile (writeback_seq moved on) stay pending for the next run.
    """
    pending = list(SyncState.objects.filter(connector=connector, writeback_pending=True).order_by("pk")
                   .only(*WRITEBACK_FIELDS)[:limit])
    if not pending:
        return 0
    client = hull_client(connector)
    items = [client.traits_item(user_claims({"id": s.hull_user_id, "email": s.email, "external_id": s.external_id}),
                                _writeback_traits(s)) for s in pending]
    client.firehose(items)
    by_seq = defaultdict(list)
    for state in pending:
        by_seq[state.writeback_seq].append(state.pk)
    with transaction.atomic():
        users_lock(connector, [state.hull_user_id for state in pending])
        for seq, pks in by_seq.items():
            SyncState.objects.filter(pk__in=pks, writeback_seq=seq).update(writeback_pending=False)
    return len(pending)
