"""Services behind the admin actions: retry, replay, resync and connector maintenance.

Each takes rows (a queryset or a model instance), changes them, enqueues work on commit
and returns what it did, so the admin only reports. Nothing here logs or returns a secret.

Resync (`users_resync`): SyncState.last_payload holds only what was sent, not the Hull
user, so a user cannot be rebuilt from it. Instead every selected state loses its
payload hash (the next Hull notification for the user is sent even if unchanged) and,
when a stored notification still holds the user's message (found through the user's
outgoing SyncLog rows, whose `source` names it), the newest such message is copied,
without its events, into a new "resync-…" notification row that goes through the
normal pipeline (stored, processed by a worker, retried, visible in admin). Only the
selected users are re-sent; events are left out because they were already sent (or
skipped) and Customer.io drops re-sent ones anyway. A message older than what the user
last had processed is skipped as stale, as usual: the cleared hash then waits for the
user's next notification.
"""
import json
import logging
import uuid
from dataclasses import dataclass

from django.db import transaction

from connector.models import Connector, new_webhook_token
from sync.exceptions import PermanentAPIError
from sync.models import SyncLog, SyncState
from sync.services import customerio_client

from .inbound import MalformedWebhook, parse_webhook
from .models import CustomerIOWebhook, HullNotification, InboxStatus
from .services import enqueue_on_commit, notification_store
from .tasks import customerio_webhooks_forward, hull_batch_process, hull_notification_process

logger = logging.getLogger(__name__)

RETRYABLE = (InboxStatus.FAILED, InboxStatus.FAILED_PERMANENT)
REPLAYABLE = (InboxStatus.PENDING, InboxStatus.DONE, InboxStatus.FAILED, InboxStatus.FAILED_PERMANENT)
IGNORABLE = (InboxStatus.PENDING, InboxStatus.FAILED, InboxStatus.FAILED_PERMANENT)
# How many of a user's latest outgoing logs are followed back to their notification.
RESYNC_SEARCH_DEPTH = 20
NOTIFICATION_SOURCE = "notification:"
# Messages per resync notification, like Hull's smart-notifier batches.
RESYNC_CHUNK = 100
RESYNC_CHANNEL = "user:update"
MARKED_IGNORED = "Marked ignored from admin."


def notifications_retry(queryset):
    """Failed notifications and batch extracts back to pending with a fresh attempt budget; returns the count."""
    with transaction.atomic():
        rows = list(HullNotification.objects.select_for_update()
                    .filter(pk__in=queryset.values("pk"), status__in=RETRYABLE).values_list("pk", "kind"))
        HullNotification.objects.filter(pk__in=[pk for pk, _ in rows]).update(
            status=InboxStatus.PENDING, attempts=0, next_attempt_at=None)
        for pk, kind in rows:
            task = hull_batch_process if kind == HullNotification.Kind.BATCH else hull_notification_process
            enqueue_on_commit(task, pk)
    return len(rows)


def _now_mapped(row):
    """The event name an ignored delivery maps to today (the mapping may have learnt its type), or ""."""
    try:
        return parse_webhook(json.loads(row.body)).name or ""
    except (ValueError, MalformedWebhook):
        return ""


def webhooks_replay(queryset):
    """Webhooks back to pending and their connectors' forwarding enqueued; returns the count.

    Rejected deliveries (bad signature) are never replayed. Ignored ones are replayed only
    when their type now maps to a Hull event: forwarding an unmapped one would fail its batch.
    """
    with transaction.atomic():
        rows = list(CustomerIOWebhook.objects.select_for_update()
                    .filter(pk__in=queryset.values("pk"), status__in=REPLAYABLE + (InboxStatus.IGNORED,)))
        replay_ids, connector_ids = [], set()
        for row in rows:
            if row.status == InboxStatus.IGNORED:
                name = _now_mapped(row)
                if not name:
                    continue
                CustomerIOWebhook.objects.filter(pk=row.pk).update(event_name=name[:100])
            replay_ids.append(row.pk)
            connector_ids.add(row.connector_id)
        CustomerIOWebhook.objects.filter(pk__in=replay_ids).update(
            status=InboxStatus.PENDING, attempts=0, next_attempt_at=None, reason="")
        for connector_id in sorted(connector_ids):
            enqueue_on_commit(customerio_webhooks_forward, connector_id)
    return len(replay_ids)


def webhooks_mark_ignored(queryset):
    """Pending or failed webhooks that support decided not to forward; returns the count."""
    return queryset.filter(status__in=IGNORABLE).update(status=InboxStatus.IGNORED, reason=MARKED_IGNORED,
                                                         next_attempt_at=None)


@dataclass
class ResyncResult:
    """`marked`: users whose next notification is sent even if unchanged; `requeued`: users re-sent now."""

    marked: int = 0
    requeued: int = 0


def _source_row_id(source, prefix):
    """The inbox row id in a SyncLog source such as "notification:12", or None."""
    suffix = source[len(prefix):] if source.startswith(prefix) else ""
    return int(suffix) if suffix.isdigit() else None


def _latest_message(connector, user_id):
    """The user's message in the newest stored notification that held it, found through the user's logs."""
    sources = (SyncLog.objects.filter(connector=connector, hull_user_id=user_id, direction=SyncLog.Direction.OUTGOING,
                                      source__startswith=NOTIFICATION_SOURCE)
               .order_by("-created_at", "-pk").values_list("source", flat=True)[:RESYNC_SEARCH_DEPTH])
    newest_first = dict.fromkeys(_source_row_id(source, NOTIFICATION_SOURCE) for source in sources)
    row_ids = [row_id for row_id in newest_first if row_id is not None]
    bodies = dict(HullNotification.objects.filter(pk__in=row_ids, connector=connector,
                                                  kind=HullNotification.Kind.NOTIFICATION).values_list("pk", "body"))
    for row_id in row_ids:
        message = _user_message(json.loads(bodies[row_id]), user_id) if row_id in bodies else None
        if message is not None:
            return message
    return None


def _user_message(body, user_id):
    for message in body.get("messages") or []:
        user = message.get("user") if isinstance(message, dict) else None
        if isinstance(user, dict) and user.get("id") == user_id:
            return {**message, "events": []}
    return None


def _resync_notification(connector, messages):
    notification_id = f"resync-{uuid.uuid4()}"
    body = {"notification_id": notification_id, "channel": RESYNC_CHANNEL, "messages": messages}
    notification_store(connector, notification_id, RESYNC_CHANNEL, json.dumps(body), len(messages))


def users_resync(states):
    """Re-send the selected users (see the module docstring); returns a ResyncResult."""
    result = ResyncResult()
    states = list(states.select_related("connector"))
    by_connector = {}
    for state in states:
        by_connector.setdefault(state.connector_id, (state.connector, []))[1].append(state)
    with transaction.atomic():
        for connector, group in by_connector.values():
            SyncState.objects.filter(pk__in=[s.pk for s in group]).update(payload_hash="")
            result.marked += len(group)
            messages = [m for m in (_latest_message(connector, s.hull_user_id) for s in group) if m is not None]
            for start in range(0, len(messages), RESYNC_CHUNK):
                _resync_notification(connector, messages[start:start + RESYNC_CHUNK])
            result.requeued += len(messages)
    return result


def connector_users_resync(connector):
    """Every user of the connector is re-sent with its next notification (or a Hull batch); returns the count."""
    return SyncState.objects.filter(connector=connector).exclude(payload_hash="").update(payload_hash="")


@dataclass
class LogsRetryResult:
    users: ResyncResult
    webhooks: int = 0


def _source_ids(logs, prefix):
    sources = logs.filter(source__startswith=prefix).order_by().values_list("source", flat=True).distinct()
    return {row_id for row_id in (_source_row_id(source, prefix) for source in sources) if row_id is not None}


def logs_retry(queryset):
    """Retry what failed in the selected error logs: resync outgoing users, replay incoming webhooks."""
    errors = queryset.filter(outcome="error")
    outgoing = errors.filter(direction=SyncLog.Direction.OUTGOING).exclude(hull_user_id="")
    pairs = set(outgoing.values_list("connector_id", "hull_user_id").distinct())
    states = SyncState.objects.none()
    for connector_id in {c for c, _ in pairs}:
        states |= SyncState.objects.filter(connector_id=connector_id,
                                           hull_user_id__in=[u for c, u in pairs if c == connector_id])
    webhook_ids = _source_ids(errors.filter(direction=SyncLog.Direction.INCOMING), "webhook:")
    return LogsRetryResult(users=users_resync(states),
                           webhooks=webhooks_replay(CustomerIOWebhook.objects.filter(pk__in=webhook_ids)))


def connector_rotate_webhook_token(connector):
    """A new secret path for the Customer.io webhook URL; the old URL stops working at once."""
    connector.webhook_token = new_webhook_token()
    connector.save(update_fields=["webhook_token", "updated_at"])
    logger.info("Connector %s: webhook token rotated", connector.pk)
    return connector


@dataclass
class RegionResult:
    region: str
    changed: bool


def connector_region_detect(connector):
    """Ask Customer.io (GET /api/v1/accounts/region) which region the workspace is in; store it.

    Raises sync.exceptions.SyncError (ConfigurationError without credentials, CredentialsRejected on 401).
    """
    info = customerio_client(connector).region()
    region = str(info.get("region") or "").lower()
    if region not in Connector.Region.values:
        raise PermanentAPIError(f"Customer.io answered an unknown region {region[:20]!r}")
    changed = region != connector.region
    if changed:
        connector.region = region
        connector.save(update_fields=["region", "updated_at"])
    return RegionResult(region=region, changed=changed)
