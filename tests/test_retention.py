"""Retention: sync logs and finished inbox rows older than each connector's retention_days are purged."""
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from sync.models import SyncLog, SyncState
from webhooks import retention
from webhooks.models import CustomerIOWebhook, HullNotification, InboxStatus
from webhooks.tasks_retention import logs_purge


def aged(model, column, days, **fields):
    row = model.objects.create(**fields)
    model.objects.filter(pk=row.pk).update(**{column: timezone.now() - timedelta(days=days)})
    return row


def log(connector, days):
    return aged(SyncLog, "created_at", days, connector=connector, action="outgoing.user.skip",
                direction="outgoing", outcome="skip")


def notification(connector, days, status=InboxStatus.DONE):
    return aged(HullNotification, "received_at", days, connector=connector, body="{}", status=status,
                notification_id=f"n-{days}-{status}-{HullNotification.objects.count()}")


def webhook(connector, days, status=InboxStatus.DONE):
    return aged(CustomerIOWebhook, "received_at", days, connector=connector, body="{}", status=status,
                event_id=f"e-{days}-{status}-{CustomerIOWebhook.objects.count()}")


@pytest.fixture
def rows(connector_factory):
    short = connector_factory(retention_days=7)
    default = connector_factory()
    return {
        "short": short, "default": default,
        "deleted": [log(short, 8), notification(short, 8), webhook(short, 8, InboxStatus.IGNORED),
                    webhook(short, 10, InboxStatus.REJECTED), notification(short, 9, InboxStatus.FAILED_PERMANENT),
                    log(default, 31), webhook(default, 40)],
        "kept": [log(short, 6), notification(short, 6), webhook(short, 5),
                 notification(short, 60, InboxStatus.PENDING), webhook(short, 60, InboxStatus.FAILED),
                 log(default, 29), notification(default, 20), webhook(default, 29)],
        "state": aged(SyncState, "updated_at", 400, connector=short, hull_user_id="u-old"),
    }


def exists(row):
    return type(row).objects.filter(pk=row.pk).exists()


def test_purge_deletes_old_finished_rows_per_connector_retention(rows):
    totals = retention.logs_purge()

    assert totals == {"sync_logs": 2, "hull_notifications": 2, "customerio_webhooks": 3}
    assert not any(exists(row) for row in rows["deleted"])
    assert all(exists(row) for row in rows["kept"])


def test_pending_and_retrying_rows_are_kept_whatever_their_age(rows):
    retention.logs_purge()

    assert HullNotification.objects.filter(status=InboxStatus.PENDING).count() == 1
    assert CustomerIOWebhook.objects.filter(status=InboxStatus.FAILED).count() == 1


def test_sync_state_is_never_purged(rows):
    retention.logs_purge()

    assert exists(rows["state"])


def test_purge_works_in_chunks(connector_factory, monkeypatch):
    connector = connector_factory(retention_days=1)
    for _ in range(7):
        log(connector, 3)
    monkeypatch.setattr(retention, "DELETE_CHUNK", 3)

    assert retention.logs_purge()["sync_logs"] == 7
    assert not SyncLog.objects.exists()


def test_purge_logs_command(rows):
    out = StringIO()

    call_command("purge_logs", stdout=out)

    assert out.getvalue().splitlines() == ["sync_logs: deleted 2", "hull_notifications: deleted 2",
                                           "customerio_webhooks: deleted 3"]


def test_purge_logs_dry_run_deletes_nothing(rows):
    out = StringIO()

    call_command("purge_logs", "--dry-run", stdout=out)

    assert "sync_logs: would delete 2" in out.getvalue()
    assert all(exists(row) for row in rows["deleted"])


def test_celery_task_purges(rows):
    assert logs_purge.name == "webhooks.tasks_retention.logs_purge"

    result = logs_purge.apply().get()

    assert result == {"sync_logs": 2, "hull_notifications": 2, "customerio_webhooks": 3}
