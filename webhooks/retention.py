"""Retention: sync logs and finished inbox rows older than each connector's retention_days are purged."""
import logging
from datetime import timedelta

from django.utils import timezone

from connector.models import Connector
from sync.models import SyncLog

from .models import CustomerIOWebhook, HullNotification, InboxStatus

logger = logging.getLogger(__name__)

DELETE_CHUNK = 5000
# Rows still waiting for work (pending, failed-and-retrying) are kept whatever their age: purging them would
# lose a delivery silently. They show up in the status check as stuck instead.
FINISHED = (InboxStatus.DONE, InboxStatus.FAILED_PERMANENT, InboxStatus.IGNORED, InboxStatus.REJECTED)
PURGED = (
    ("sync_logs", SyncLog, "created_at", {}),
    ("hull_notifications", HullNotification, "received_at", {"status__in": FINISHED}),
    ("customerio_webhooks", CustomerIOWebhook, "received_at", {"status__in": FINISHED}),
)


def _delete_in_chunks(queryset, dry_run):
    """Delete by primary key in chunks so no single statement holds locks on millions of rows."""
    if dry_run:
        return queryset.count()
    deleted = 0
    while True:
        ids = list(queryset.order_by().values_list("pk", flat=True)[:DELETE_CHUNK])
        if not ids:
            return deleted
        deleted += queryset.model.objects.filter(pk__in=ids).delete()[0]


def connector_logs_purge(connector, now=None, dry_run=False):
    """Purge one connector's old rows; returns {table: rows deleted (or, with dry_run, that would be)}."""
    cutoff = (now or timezone.now()) - timedelta(days=connector.retention_days)
    return {name: _delete_in_chunks(model.objects.filter(connector=connector, **{f"{column}__lt": cutoff}, **extra),
                                    dry_run)
            for name, model, column, extra in PURGED}


def logs_purge(now=None, dry_run=False):
    """Purge every connector's old rows; returns the totals per table."""
    totals = {name: 0 for name, *_ in PURGED}
    for connector in Connector.objects.only("pk", "retention_days"):
        for name, count in connector_logs_purge(connector, now, dry_run).items():
            totals[name] += count
    if any(totals.values()) and not dry_run:
        logger.info("Retention purge deleted %s", totals)
    return totals
