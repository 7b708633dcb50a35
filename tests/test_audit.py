"""Inbox accounting (webhooks/audit.py) and `manage.py sync_audit`."""
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from webhooks.audit import STATE_LABELS, age_text, audit_total, inbox_audit
from webhooks.models import CustomerIOWebhook, HullNotification, InboxStatus

pytestmark = pytest.mark.django_db

EVERY_STATE = [
    (InboxStatus.PENDING, ""),
    (InboxStatus.DONE, ""),
    (InboxStatus.FAILED, "Customer.io answered 500"),
    (InboxStatus.FAILED_PERMANENT, "gave up after 20 attempts"),
    (InboxStatus.IGNORED, "Unknown event type"),
    (InboxStatus.REJECTED, "bad signature"),
]


def inbox_row(model, connector, status, reason, age, **fields):
    row = model.objects.create(connector=connector, body="{}", status=status, reason=reason, **fields)
    if age is not None:
        model.objects.filter(pk=row.pk).update(received_at=timezone.now() - age)
    return row


def notification_row(connector, status=InboxStatus.DONE, reason="", age=None, **fields):
    return inbox_row(HullNotification, connector, status, reason, age,
                     notification_id=f"n-{HullNotification.objects.count()}", **fields)


def webhook_row(connector, status=InboxStatus.DONE, reason="", age=None, **fields):
    return inbox_row(CustomerIOWebhook, connector, status, reason, age,
                     event_id=f"e-{CustomerIOWebhook.objects.count()}", **fields)


def test_counts_every_state_of_both_inboxes(connector_factory):
    connector = connector_factory()
    for status, reason in EVERY_STATE:
        notification_row(connector, status, reason)
        webhook_row(connector, status, reason)
        webhook_row(connector, status, reason)

    [audit] = inbox_audit()

    notifications, webhooks = audit.inboxes
    assert notifications.counts == dict.fromkeys(STATE_LABELS, 1)
    assert webhooks.counts == dict.fromkeys(STATE_LABELS, 2)
    assert (notifications.total, webhooks.total) == (6, 12)
    assert notifications.consistent and webhooks.consistent


def test_received_equals_the_sum_of_the_states(connector_factory):
    connector = connector_factory()
    for n in range(30):
        status, reason = EVERY_STATE[n % len(EVERY_STATE)]
        webhook_row(connector, status, reason)

    webhooks = inbox_audit()[0].inbox("customerio webhooks")

    assert webhooks.total == CustomerIOWebhook.objects.count() == sum(webhooks.counts.values())


def test_connectors_are_counted_apart_and_totalled(connector_factory):
    first, second = connector_factory(name="A"), connector_factory(name="B")
    notification_row(first)
    notification_row(second, InboxStatus.FAILED, "boom", next_attempt_at=timezone.now())
    notification_row(second)

    audits = inbox_audit()
    total = audit_total(audits)

    assert [a.connector for a in audits] == [first, second]
    assert audits[0].inbox("hull notifications").counts["done"] == 1
    assert audits[1].inbox("hull notifications").counts["failed-retryable"] == 1
    assert total.inbox("hull notifications").counts == {**dict.fromkeys(STATE_LABELS, 0), "done": 2,
                                                         "failed-retryable": 1}


def test_one_connector_by_hull_id(connector_factory):
    connector_factory()
    wanted = connector_factory()
    webhook_row(wanted)

    [audit] = inbox_audit(wanted.hull_id)

    assert audit.connector == wanted
    assert audit.inbox("customerio webhooks").total == 1


def test_oldest_pending_age_over_both_inboxes(connector_factory):
    connector = connector_factory()
    notification_row(connector, InboxStatus.PENDING, age=timedelta(minutes=5))
    webhook_row(connector, InboxStatus.PENDING, age=timedelta(minutes=42))
    webhook_row(connector, InboxStatus.DONE, age=timedelta(days=3))

    [audit] = inbox_audit()

    age = timezone.now() - audit.oldest_pending_at
    assert timedelta(minutes=41) < age < timedelta(minutes=43)
    assert audit.inbox("hull notifications").oldest_pending_at > audit.oldest_pending_at


def test_no_pending_means_no_oldest_age(connector_factory):
    connector = connector_factory()
    notification_row(connector)

    assert inbox_audit()[0].oldest_pending_at is None


def test_a_failure_without_reason_breaks_the_bookkeeping(connector_factory):
    connector = connector_factory()
    webhook_row(connector, InboxStatus.FAILED, "")
    webhook_row(connector, InboxStatus.IGNORED, "")
    webhook_row(connector, InboxStatus.DONE, "")

    webhooks = inbox_audit()[0].inbox("customerio webhooks")

    assert webhooks.without_reason == 2
    assert not webhooks.consistent


def test_an_unknown_status_is_counted_apart(connector_factory):
    connector = connector_factory()
    row = webhook_row(connector)
    CustomerIOWebhook.objects.filter(pk=row.pk).update(status="weird")

    webhooks = inbox_audit()[0].inbox("customerio webhooks")

    assert webhooks.unknown_status == 1 and webhooks.total == 1
    assert not webhooks.consistent


def test_failed_rows_without_a_next_attempt_wait_for_a_fix(connector_factory):
    connector = connector_factory()
    notification_row(connector, InboxStatus.FAILED, "Customer.io rejected the key")
    notification_row(connector, InboxStatus.FAILED, "500", next_attempt_at=timezone.now())

    assert inbox_audit()[0].inbox("hull notifications").failed_awaiting_fix == 1


@pytest.mark.parametrize("seconds, text", [(0, "0m 00s"), (65, "1m 05s"), (3 * 3600 + 120, "3h 02m"),
                                           (2 * 86400 + 3600, "2d 1h")])
def test_age_text(seconds, text):
    now = timezone.now()
    assert age_text(now - timedelta(seconds=seconds), now) == text
    assert age_text(None) == "none"


def run_command(*args):
    out = StringIO()
    call_command("sync_audit", *args, stdout=out)
    return out.getvalue()


def test_command_prints_counts_per_state_for_both_inboxes(connector_factory):
    connector = connector_factory(name="Acme")
    for status, reason in EVERY_STATE:
        notification_row(connector, status, reason, age=timedelta(minutes=7))
        webhook_row(connector, status, reason)

    output = run_command()

    assert f"Acme ({connector.hull_id})" in output
    header = next(line for line in output.splitlines() if line.strip().startswith("inbox"))
    assert header.split() == ["inbox", *STATE_LABELS, "total"]
    notifications = next(line for line in output.splitlines() if line.strip().startswith("hull notifications"))
    webhooks = next(line for line in output.splitlines() if line.strip().startswith("customerio webhooks"))
    assert notifications.split()[2:] == ["1"] * 6 + ["6"]
    assert webhooks.split()[2:] == ["1"] * 6 + ["6"]
    assert "oldest pending: 7m" in output


def test_command_filters_by_connector_and_totals_several(connector_factory):
    first, second = connector_factory(name="First"), connector_factory(name="Second")
    webhook_row(first)
    webhook_row(second)

    only_second = run_command("--connector", second.hull_id)
    everything = run_command()

    assert "Second" in only_second and "First" not in only_second
    assert "All connectors" in everything
    assert "oldest pending: none" in everything


def test_command_unknown_connector_is_an_error(connector_factory):
    connector_factory()
    with pytest.raises(CommandError, match="No connector"):
        run_command("--connector", "nope")
