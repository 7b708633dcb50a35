"""Connector status check (DESIGN §5.3): the old connector's messages plus our own."""
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone

from connector.models import Connector
from sync.exceptions import CredentialsRejected, SyncError
from sync.models import SyncLog
from sync.services import customerio_client, hull_client

from .models import CustomerIOWebhook, HullNotification, InboxStatus

logger = logging.getLogger(__name__)

NO_SEGMENTS = ("No users will be synchronized because you have not specified at least one whitelisted segment "
               "in Settings.")
MISSING_CREDENTIALS = "Missing Credentials: Site ID or API Key are not configured in Settings."
INVALID_CREDENTIALS = "Invalid Credentials: Verify Site ID and API Key in Settings."
NO_SIGNING_KEY = ("No webhook signing key: incoming Customer.io webhooks are not verified. Copy the signing key "
                  "from Customer.io's Reporting Webhook settings.")
NO_RECENT_WEBHOOK = "No webhook received from Customer.io in the last 24 hours."
ERROR_RATE = "{rate:.0%} of the {total} sync decisions in the last hour were errors."
STUCK = "{count} deliveries have been pending for more than {minutes} minutes."
ERROR_RATE_THRESHOLD = 0.1
LEVELS = {"ok": 0, "warning": 1, "error": 2}
STUCK_AFTER = timedelta(minutes=30)


@dataclass
class StatusResult:
    status: str = "ok"
    messages: list = field(default_factory=list)

    def add(self, level, message):
        self.messages.append(message)
        if LEVELS[level] > LEVELS[self.status]:
            self.status = level


def _credentials(connector, result):
    if not connector.has_customerio_credentials:
        result.add("error", MISSING_CREDENTIALS)
        return
    try:
        customerio_client(connector).region()
    except CredentialsRejected:
        result.add("error", INVALID_CREDENTIALS)
        return
    except SyncError as err:
        result.add("error", f"Error when trying to connect with Customer.io: {err}")
        return
    if connector.credentials_rejected_at:
        Connector.objects.filter(pk=connector.pk).update(credentials_rejected_at=None)
        connector.credentials_rejected_at = None


def _traffic(connector, result, now):
    if not CustomerIOWebhook.objects.filter(connector=connector, received_at__gte=now - timedelta(hours=24)).exists():
        result.add("warning", NO_RECENT_WEBHOOK)
    recent = SyncLog.objects.filter(connector=connector, created_at__gte=now - timedelta(hours=1))
    total = recent.count()
    errors = recent.filter(outcome="error").count() if total else 0
    if total and errors / total > ERROR_RATE_THRESHOLD:
        result.add("warning", ERROR_RATE.format(rate=errors / total, total=total))
    stuck = sum(model.objects.filter(connector=connector, status=InboxStatus.PENDING,
                                     received_at__lt=now - STUCK_AFTER).count()
                for model in (HullNotification, CustomerIOWebhook))
    if stuck:
        result.add("warning", STUCK.format(count=stuck, minutes=int(STUCK_AFTER.total_seconds() // 60)))


def status_check(connector, push_to_hull=True):
    """Compute, store and (optionally) push the connector's status; returns the StatusResult."""
    now = timezone.now()
    result = StatusResult()
    if not connector.synchronized_segments:
        result.add("warning", NO_SEGMENTS)
    _credentials(connector, result)
    if not connector.webhook_signing_key:
        result.add("warning", NO_SIGNING_KEY)
    _traffic(connector, result, now)
    Connector.objects.filter(pk=connector.pk).update(status=result.status, status_messages=result.messages,
                                                    status_checked_at=now)
    if push_to_hull:
        try:
            hull_client(connector).put_status(result.status, result.messages)
        except SyncError as err:
            logger.warning("Could not push status of connector %s to Hull: %s", connector.pk, err)
    return result
