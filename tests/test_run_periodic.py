from django.core.management import call_command

from webhooks.models import HullNotification, InboxStatus


def test_run_periodic_once_sweeps_due_rows(connector_factory, monkeypatch, django_capture_on_commit_callbacks):
    connector = connector_factory(site_id="", api_key="")
    row = HullNotification.objects.create(connector=connector, notification_id="n1", body='{"messages": []}',
                                          status=InboxStatus.FAILED, attempts=1)
    HullNotification.objects.filter(pk=row.pk).update(next_attempt_at="2000-01-01T00:00:00Z")
    call_command("run_periodic", "--once")
    row.refresh_from_db()
    assert row.attempts == 2
    assert "Missing Credentials" in row.reason
