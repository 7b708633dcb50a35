"""Inbox services: store deliveries, process them, sweep what is stuck."""
import json
import logging
import time
import uuid
from datetime import timedelta

from django.db import OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone

from connector.models import Connector
from sync.db import insert_unless_duplicate
from sync.encoding import parse_json
from sync.exceptions import ConfigurationError, CredentialsRejected
from sync.ratelimit import redis_client
from sync.scheduling import enqueue_once
from sync.seen import seen_values_record
from sync.services import users_sync
from sync.tasks import writeback_schedule

from .forwarding import webhooks_forward
from .models import CustomerIOWebhook, HullNotification, InboxStatus

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 20
FORWARD_KEY = "cio:forward-scheduled"
FORWARD_KEY_TTL = 10
FORWARD_DELAY = 0.25
TRANSIENT_PGCODES = ("40P01", "40001")  # deadlock detected, serialization failure
STALE_PENDING = timedelta(minutes=2)


def next_attempt(attempts):
    """When a failed row is tried again: 30 s doubling, at most an hour apart."""
    return timezone.now() + timedelta(seconds=min(3600, 30 * (2 ** max(0, attempts - 1))))


def enqueue_on_commit(task, *args):
    """Enqueue after commit; if the broker is down the row stays pending and the sweeper picks it up."""

    def send():
        try:
            task.delay(*args)
        except Exception:  # noqa: BLE001 - any broker failure: the stored row is the source of truth
            logger.warning("Could not enqueue %s%s; the sweeper will retry", task.name, args, exc_info=True)

    transaction.on_commit(send)


def notification_store(connector, notification_id, channel, body, message_count, kind=HullNotification.Kind.NOTIFICATION):
    """Persist a notification once per notification_id; returns (row, created)."""
    row = HullNotification(connector=connector, notification_id=notification_id, channel=channel, body=body,
                           message_count=message_count, kind=kind)
    if not insert_unless_duplicate(row):
        return HullNotification.objects.get(connector=connector, notification_id=notification_id), False
    from .tasks import hull_notification_process

    enqueue_on_commit(hull_notification_process, row.pk)
    return row, True


def batch_store(connector, url, segment_id=""):
    """Persist a batch extract request and enqueue its download."""
    row = HullNotification.objects.create(
        connector=connector, kind=HullNotification.Kind.BATCH, notification_id=f"batch-{uuid.uuid4()}",
        body=json.dumps({"url": url, "segment_id": segment_id}))
    from .tasks import hull_batch_process

    enqueue_on_commit(hull_batch_process, row.pk)
    return row


def _fail(row, reason, retry_at=None, permanent=False):
    row.status = InboxStatus.FAILED_PERMANENT if permanent else InboxStatus.FAILED
    row.reason, row.next_attempt_at = reason, retry_at


def _fail_for_retry(row, reason):
    """Failed with a next attempt, or permanently once out of attempts; True when a retry is due."""
    permanent = row.attempts >= MAX_ATTEMPTS
    _fail(row, reason, None if permanent else next_attempt(row.attempts), permanent=permanent)
    return not permanent


def unexpected_reason(err):
    """What support reads on a row when processing broke in a way nobody planned for."""
    return f"Unexpected error: {type(err).__name__}: {str(err)[:300]}"


def notification_process(row_id):
    """Process one stored notification under a row lock. Returns True when it should be retried."""
    with transaction.atomic():
        # Lock this row only: locking the joined connector row too would serialize every worker and
        # block the web's inserts (their foreign-key check) until the run's Customer.io calls end.
        row = (HullNotification.objects.select_for_update(of=("self",)).select_related("connector")
               .filter(pk=row_id, kind=HullNotification.Kind.NOTIFICATION,
                       status__in=[InboxStatus.PENDING, InboxStatus.FAILED]).first())
        if row is None:
            return False
        row.attempts += 1
        retry = _notification_run(row)
        row.processed_at = timezone.now()
        row.save(update_fields=["status", "reason", "attempts", "processed_at", "next_attempt_at"])
    return retry


def _notification_run(row):
    connector = row.connector
    try:
        body = parse_json(row.body)
        transaction.on_commit(lambda: _seen_values_record(connector, body))
        with transaction.atomic():
            summary = users_sync(connector, body.get("messages") or [], source=f"notification:{row.pk}")
    except CredentialsRejected as err:
        _credentials_rejected(connector, err)
        _fail(row, f"{err}. Fix the API key, then retry this row from admin.")
        return False
    except ConfigurationError as err:
        _fail(row, f"{err} Fix the connector, then retry this row from admin.")
        return False
    except OperationalError as err:
        if getattr(err.__cause__, "pgcode", None) not in TRANSIENT_PGCODES:
            raise
        logger.warning("Notification %s hit a database conflict, retrying: %s", row.pk, err)
        _fail(row, f"Database conflict, retrying: {str(err)[:200]}", next_attempt(row.attempts))
        return True
    except Exception as err:  # noqa: BLE001 - whatever broke, support must see it on the row
        logger.exception("Notification %s failed unexpectedly", row.pk)
        _fail_for_retry(row, unexpected_reason(err))
        return False
    if summary.writeback:
        transaction.on_commit(lambda: writeback_schedule(connector.pk))
    if summary.retry_reason:
        return _fail_for_retry(row, f"{summary.outcomes['retry']} user(s) not delivered yet: {summary.retry_reason}")
    row.status, row.reason, row.next_attempt_at = InboxStatus.DONE, "", None
    return False


def _seen_values_record(connector, body):
    """After commit, outside the row locks: picker data is a convenience, never a reason to fail."""
    try:
        seen_values_record(connector, body)
    except Exception:  # noqa: BLE001
        logger.warning("Could not record seen values for connector %s", connector.pk, exc_info=True)


def _credentials_rejected(connector, err):
    now = timezone.now()
    Connector.objects.filter(pk=connector.pk).update(
        credentials_rejected_at=now, status="error", status_checked_at=now,
        status_messages=["Invalid Credentials: Verify Site ID and API Key in Settings."])
    logger.warning("Connector %s: %s; outgoing sync paused", connector.pk, err)


def webhooks_forward_for(connector_id):
    """Forward a connector's pending webhooks; True when a retry should be scheduled."""
    forward_started(connector_id)
    connector = Connector.objects.filter(pk=connector_id).first()
    if connector is None:
        return False
    pending = CustomerIOWebhook.objects.filter(connector=connector, status=InboxStatus.PENDING)
    try:
        _, retry = webhooks_forward(connector)
    except ConfigurationError as err:
        pending.update(status=InboxStatus.FAILED, reason=f"{err} Fix the connector, then replay from admin.")
        return False
    except Exception as err:  # noqa: BLE001 - whatever broke, support must see it on the rows
        logger.exception("Forwarding webhooks of connector %s failed unexpectedly", connector.pk)
        pending.update(status=InboxStatus.FAILED, attempts=F("attempts") + 1, next_attempt_at=next_attempt(1),
                       reason=unexpected_reason(err))
        return False
    return retry


def _give_up(model):
    """Failed rows out of attempts become permanent failures (still replayable from admin)."""
    model.objects.filter(status=InboxStatus.FAILED, attempts__gte=MAX_ATTEMPTS).update(
        status=InboxStatus.FAILED_PERMANENT, next_attempt_at=None)


def inbox_sweep():
    """Enqueue stale pending and due failed rows of both inboxes; returns how many tasks were enqueued."""
    from .tasks import customerio_webhooks_forward, hull_batch_process, hull_notification_process

    now = timezone.now()
    for model in (HullNotification, CustomerIOWebhook):
        _give_up(model)
    CustomerIOWebhook.objects.filter(status=InboxStatus.FAILED, next_attempt_at__lte=now).update(
        status=InboxStatus.PENDING, next_attempt_at=None)
    due = (Q(status=InboxStatus.PENDING, received_at__lt=now - STALE_PENDING)
           | Q(status=InboxStatus.FAILED, next_attempt_at__lte=now))
    rows = list(HullNotification.objects.filter(due).values_list("pk", "kind")[:1000])
    # A lease, so a backlog of queued retries is not enqueued again at every sweep.
    HullNotification.objects.filter(pk__in=[pk for pk, _ in rows], status=InboxStatus.FAILED).update(
        next_attempt_at=now + STALE_PENDING)
    for row_id, kind in rows:
        task = hull_batch_process if kind == HullNotification.Kind.BATCH else hull_notification_process
        task.delay(row_id)
    connector_ids = set(CustomerIOWebhook.objects.filter(status=InboxStatus.PENDING)
                        .values_list("connector_id", flat=True))
    for connector_id in connector_ids:
        customerio_webhooks_forward.delay(connector_id)
    return len(rows) + len(connector_ids)


def _webhook_fields(event):
    return {"event_id": event.event_id[:100], "object_type": event.object_type[:40], "metric": event.metric[:60],
            "event_name": (event.name or "")[:100], "email": (event.email or "")[:320],
            "customer_id": (event.customer_id or "")[:255]}


def webhook_store(connector, body, event, signature_valid):
    """Persist a delivery once per event_id; True when stored, False for a duplicate.

    Ignored types are stored as ignored.
    """
    status = InboxStatus.PENDING if event.name else InboxStatus.IGNORED
    row = CustomerIOWebhook(connector=connector, body=body, status=status, reason=event.ignore_reason,
                            signature_valid=signature_valid, **_webhook_fields(event))
    if not insert_unless_duplicate(row):
        return False
    if status == InboxStatus.PENDING:
        transaction.on_commit(lambda: forward_schedule(connector.pk))
    return True


# Per process: until when a forwarding run this process enqueued has surely not started yet.
_forward_pending_until = {}


def forward_schedule(connector_id):
    """Make sure one forwarding run for this connector is coming; deliveries arriving meanwhile join it.

    With Redis, a short-lived key lets only the first delivery of a burst enqueue a slightly delayed
    run, so one firehose request carries many events. The run clears the key when it starts; if it
    dies, the key expires and the sweeper catches up. For half the delay after it enqueued a run,
    a process skips even the Redis call: that run cannot have started, so it will see this delivery.
    """
    from .tasks import customerio_webhooks_forward

    if time.monotonic() < _forward_pending_until.get(connector_id, 0):
        return
    enqueued = enqueue_once(customerio_webhooks_forward, (connector_id,), f"{FORWARD_KEY}:{connector_id}",
                            FORWARD_KEY_TTL, FORWARD_DELAY)
    if enqueued and not customerio_webhooks_forward.app.conf.task_always_eager:  # eager runs have started
        _forward_pending_until[connector_id] = time.monotonic() + FORWARD_DELAY / 2


def forward_started(connector_id):
    """Called by a forwarding run as it starts: later deliveries schedule the next run."""
    client = redis_client()
    if client is not None:
        try:
            client.delete(f"{FORWARD_KEY}:{connector_id}")
        except Exception:  # noqa: BLE001 - the key expires by itself
            logger.warning("Could not clear the forwarding key of connector %s", connector_id, exc_info=True)


def webhook_reject(connector, body, payload, reason):
    """Keep a visible trace of a delivery whose signature failed; it is never processed."""
    event_id = payload.get("event_id") if isinstance(payload.get("event_id"), str) else ""
    CustomerIOWebhook.objects.create(connector=connector, body=body,
                                     status=InboxStatus.REJECTED, reason=reason, signature_valid=False,
                                     event_id=event_id[:100])
