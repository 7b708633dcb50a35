"""Customer.io reporting webhooks → Hull track events (and optional traits), many per firehose request."""
import logging

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from sync.db import bulk_insert, bulk_update
from sync.encoding import parse_json
from sync.exceptions import SyncError
from sync.hull import user_claims as hull_claims
from sync.models import SyncLog, SyncState
from sync.services import hull_client, users_lock

from .inbound import hull_track_body, parse_webhook, user_claims
from .models import CustomerIOWebhook, InboxStatus

logger = logging.getLogger(__name__)

FORWARD_BATCH = 200
NO_IDENTIFIER = "Payload didn't contain any identifier for a Hull user."
ROW_FIELDS = ["status", "reason", "attempts", "processed_at", "next_attempt_at", "hull_user_id"]


def webhooks_forward(connector):
    """Forward every pending delivery of a connector; returns (forwarded, retry_needed)."""
    total = 0
    while True:
        forwarded, claimed, retry = _forward_batch(connector)
        total += forwarded
        if retry or claimed < FORWARD_BATCH:
            return total, retry


def _lock_pending(connector):
    query = CustomerIOWebhook.objects.filter(connector=connector, status=InboxStatus.PENDING).order_by("pk")
    if connection.features.has_select_for_update_skip_locked:
        query = query.select_for_update(skip_locked=True)
    return list(query[:FORWARD_BATCH])


def _known_users(connector, events):
    """SyncState rows matching the events' Customer.io ids, cio_ids or emails, as lookup tables."""
    ids = {e.customer_id for e in events if e.customer_id} | {e.email for e in events if e.email}
    cio_ids = {e.cio_id for e in events if e.cio_id}
    if not ids and not cio_ids:
        return {}, {}
    states = SyncState.objects.filter(connector=connector).filter(Q(customerio_id__in=ids) | Q(cio_id__in=cio_ids))
    by_id, by_cio = {}, {}
    for state in states:
        if state.customerio_id:
            by_id[state.customerio_id] = state
        if state.cio_id:
            by_cio[state.cio_id] = state
    return by_id, by_cio


class _Batch:
    """One batch of rows being forwarded: builds firehose items, logs and row updates."""

    def __init__(self, connector, rows):
        self.connector, self.rows = connector, rows
        self.client = hull_client(connector)
        self.events = [parse_webhook(parse_json(r.body), include_content=connector.forward_message_body) for r in rows]
        self.by_id, self.by_cio = _known_users(connector, self.events)
        self.items, self.sent_rows, self.logs, self.learnt = [], [], [], []

    def state_for(self, event):
        return (self.by_cio.get(event.cio_id) or self.by_id.get(event.customer_id)
                or self.by_id.get(event.email))

    def build(self):
        for row, event in zip(self.rows, self.events):
            state = self.state_for(event)
            claims = {"id": state.hull_user_id} if state else hull_claims(
                user_claims(event, self.connector.user_id_mapping))
            if not claims:
                row.status, row.reason = InboxStatus.FAILED, NO_IDENTIFIER
                self.logs.append(self.log(row, event, "incoming.event.error", NO_IDENTIFIER))
                continue
            if state:
                row.hull_user_id = state.hull_user_id
                self._learn_cio_id(state, event)
            self.items.append(self.client.track_item(claims, hull_track_body(event)))
            if self.connector.update_hull_traits and event.trait_updates:
                self.items.append(self.client.traits_item(claims, event.trait_updates))
            self.sent_rows.append((row, event))

    def _learn_cio_id(self, state, event):
        if event.cio_id and state.cio_id != event.cio_id:
            state.cio_id = event.cio_id
            self.learnt.append(state)

    def log(self, row, event, action, reason=""):
        return SyncLog(connector=self.connector, action=action, direction="incoming", outcome=action.split(".")[-1],
                       hull_user_id=row.hull_user_id, email=row.email, customerio_id=row.customer_id,
                       event_id=row.event_id, reason=reason, source=f"webhook:{row.pk}",
                       data={"event": event.name, "properties": event.properties})


def _forward_batch(connector):
    """Returns (forwarded, claimed, retry_needed)."""
    from .services import next_attempt

    with transaction.atomic():
        rows = _lock_pending(connector)
        if not rows:
            return 0, 0, False
        now = timezone.now()
        for row in rows:
            row.attempts += 1
            row.processed_at = now
        batch = _Batch(connector, rows)
        batch.build()
        retry = False
        try:
            if batch.items:
                batch.client.firehose(batch.items)
        except SyncError as err:
            retry = err.retryable
            for row, event in batch.sent_rows:
                row.status, row.reason = InboxStatus.FAILED, f"Hull firehose: {err}"
                row.next_attempt_at = next_attempt(row.attempts)
                batch.logs.append(batch.log(row, event, "incoming.event.error", row.reason))
        else:
            for row, event in batch.sent_rows:
                row.status, row.reason, row.next_attempt_at = InboxStatus.DONE, "", None
                batch.logs.append(batch.log(row, event, "incoming.event.success"))
            if batch.learnt:
                users_lock(connector, [state.hull_user_id for state in batch.learnt])
                bulk_update(SyncState, batch.learnt, ["cio_id"])
        bulk_update(CustomerIOWebhook, rows, ROW_FIELDS)
        bulk_insert(SyncLog, batch.logs)
    return len(batch.sent_rows) if not retry else 0, len(rows), retry
