"""Tests for webhooks.status.status_check and GET|POST /hull/status (DESIGN §5.3, hull-protocol.md §5.4)."""
from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from connector.models import Connector
from sync.models import SyncLog
from webhooks.models import CustomerIOWebhook, HullNotification, InboxStatus
from webhooks.status import (
    ERROR_RATE_THRESHOLD, INVALID_CREDENTIALS, MISSING_CREDENTIALS, NO_RECENT_WEBHOOK, NO_SEGMENTS, NO_SIGNING_KEY,
    status_check,
)

SITE, KEY = "site-status", "key-status-SECRET"
HULL_SECRET = "hull-secret-for-status-tests-0123456789ab"
CONNECT_ERROR = "Error when trying to connect with Customer.io: "


@pytest.fixture
def make_connector(connector_factory, cio, hull, monkeypatch):
    monkeypatch.setenv("CUSTOMERIO_TRACK_URL", cio.url)
    monkeypatch.setenv("HULL_FIREHOSE_URL", hull.url)

    def make(recent_webhook=True, **overrides):
        fields = {"hull_organization": hull.url, "hull_secret": HULL_SECRET, "site_id": SITE, "api_key": KEY,
                  "synchronized_segments": ["seg-1"], "webhook_signing_key": "signing-key"}
        fields.update(overrides)
        connector = connector_factory(**fields)
        hull.add_connector(connector.hull_id, HULL_SECRET)
        if recent_webhook:
            CustomerIOWebhook.objects.create(connector=connector, body="{}", event_id=f"ev-{connector.pk}",
                                             status=InboxStatus.DONE)
        return connector

    return make


def add_logs(connector, errors, total):
    SyncLog.objects.bulk_create([
        SyncLog(connector=connector, action="outgoing.user.error" if i < errors else "outgoing.user.success",
                direction="outgoing", outcome="error" if i < errors else "success")
        for i in range(total)])


# --- the old connector's cases -------------------------------------------------------------

def test_ok(make_connector, cio, hull):
    connector = make_connector()

    result = status_check(connector)

    assert (result.status, result.messages) == ("ok", [])
    assert cio.stats()["by_route"] == {"GET /api/v1/accounts/region": 1}
    assert hull.statuses(connector.hull_id) == [{"status": "ok", "messages": []}]
    connector.refresh_from_db()
    assert connector.status == "ok" and connector.status_messages == [] and connector.status_checked_at


def test_invalid_credentials(make_connector, hull):
    connector = make_connector(api_key="wrong-key")

    result = status_check(connector)

    assert (result.status, result.messages) == ("error", [INVALID_CREDENTIALS])
    assert INVALID_CREDENTIALS == "Invalid Credentials: Verify Site ID and API Key in Settings."
    assert hull.statuses(connector.hull_id) == [{"status": "error", "messages": [INVALID_CREDENTIALS]}]
    assert "wrong-key" not in str(result.messages)


def test_customerio_500(make_connector, cio, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "2")
    connector = make_connector()
    cio.fail(status=500, count=2)

    result = status_check(connector)

    assert result.status == "error"
    [message] = result.messages
    assert message.startswith(CONNECT_ERROR) and "500" in message
    assert KEY not in message


def test_customerio_unreachable(make_connector, cio, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "1")
    connector = make_connector()
    cio.set_down()
    result = status_check(connector)
    assert result.status == "error" and result.messages[0].startswith(CONNECT_ERROR)


def test_unexpected_answer_from_customerio_is_an_error_not_a_crash(make_connector, hull, monkeypatch):
    """A 200 that is not JSON (a proxy's login page) must still give a status (hull-protocol.md §5.4:
    any other exception → "Error when trying to determine the status: <message>")."""
    connector = make_connector()
    monkeypatch.setenv("CUSTOMERIO_TRACK_URL", "https://track.proxy.test")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add_passthru(hull.url)
        mocked.add(responses.GET, "https://track.proxy.test/api/v1/accounts/region", status=200,
                   body="<html>Sign in</html>", content_type="text/html")
        result = status_check(connector)

    assert result.status == "error"
    assert result.messages[0].startswith(("Error when trying to determine the status: ", CONNECT_ERROR))
    assert hull.statuses(connector.hull_id)[-1]["status"] == "error"


def test_no_segments_warning(make_connector):
    connector = make_connector(synchronized_segments=[])
    result = status_check(connector)
    assert (result.status, result.messages) == ("warning", [NO_SEGMENTS])
    assert NO_SEGMENTS == ("No users will be synchronized because you have not specified at least one "
                           "whitelisted segment in Settings.")


@pytest.mark.parametrize("missing", [{"site_id": ""}, {"api_key": ""}, {"site_id": "", "api_key": ""}])
def test_missing_credentials_makes_no_http_call(make_connector, cio, missing):
    connector = make_connector(**missing)
    result = status_check(connector)
    assert (result.status, result.messages) == ("error", [MISSING_CREDENTIALS])
    assert MISSING_CREDENTIALS == "Missing Credentials: Site ID or API Key are not configured in Settings."
    assert cio.stats()["requests"] == 0


def test_segments_warning_comes_first_and_error_wins(make_connector):
    connector = make_connector(synchronized_segments=[], api_key="")
    result = status_check(connector)
    assert result.status == "error"
    assert result.messages == [NO_SEGMENTS, MISSING_CREDENTIALS]


# --- our own checks ------------------------------------------------------------------------

def test_no_signing_key_warning(make_connector):
    result = status_check(make_connector(webhook_signing_key=""))
    assert (result.status, result.messages) == ("warning", [NO_SIGNING_KEY])


def test_no_webhook_in_24_hours_warning(make_connector):
    result = status_check(make_connector(recent_webhook=False))
    assert (result.status, result.messages) == ("warning", [NO_RECENT_WEBHOOK])


def test_only_an_old_webhook_still_warns(make_connector):
    connector = make_connector()
    CustomerIOWebhook.objects.filter(connector=connector).update(received_at=timezone.now() - timedelta(hours=25))
    assert status_check(connector).messages == [NO_RECENT_WEBHOOK]


def test_webhooks_of_another_connector_do_not_count(make_connector):
    make_connector()
    lonely = make_connector(recent_webhook=False)
    assert status_check(lonely).messages == [NO_RECENT_WEBHOOK]


def test_error_rate_warning(make_connector):
    connector = make_connector()
    add_logs(connector, errors=3, total=10)

    result = status_check(connector)

    assert result.status == "warning"
    [message] = result.messages
    assert "30%" in message and "10" in message


def test_error_rate_under_threshold_is_ok(make_connector):
    connector = make_connector()
    add_logs(connector, errors=1, total=20)
    assert ERROR_RATE_THRESHOLD > 1 / 20
    assert status_check(connector).status == "ok"


def test_only_last_hour_counts_for_error_rate(make_connector):
    connector = make_connector()
    add_logs(connector, errors=5, total=5)
    SyncLog.objects.filter(connector=connector).update(created_at=timezone.now() - timedelta(hours=2))
    assert status_check(connector).status == "ok"


def test_errors_of_another_connector_do_not_count(make_connector):
    other = make_connector()
    add_logs(other, errors=5, total=5)
    assert status_check(make_connector()).status == "ok"


def test_stuck_deliveries_warning(make_connector):
    connector = make_connector()
    HullNotification.objects.create(connector=connector, notification_id="old", body="{}")
    HullNotification.objects.filter(connector=connector).update(received_at=timezone.now() - timedelta(hours=1))
    result = status_check(connector)
    assert result.status == "warning" and len(result.messages) == 1 and "pending" in result.messages[0]


def test_all_warnings_together(make_connector):
    connector = make_connector(synchronized_segments=[], webhook_signing_key="", recent_webhook=False)
    add_logs(connector, errors=10, total=10)
    result = status_check(connector)
    assert result.status == "warning"
    assert result.messages[:3] == [NO_SEGMENTS, NO_SIGNING_KEY, NO_RECENT_WEBHOOK]
    assert len(result.messages) == 4


def test_successful_check_clears_paused_credentials(make_connector):
    connector = make_connector(credentials_rejected_at=timezone.now())
    status_check(connector)
    connector.refresh_from_db()
    assert connector.credentials_rejected_at is None


def test_failed_check_keeps_paused_credentials(make_connector):
    connector = make_connector(api_key="wrong", credentials_rejected_at=timezone.now())
    status_check(connector)
    connector.refresh_from_db()
    assert connector.credentials_rejected_at is not None


def test_status_is_computed_even_when_hull_is_down(make_connector, hull, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "1")
    connector = make_connector()
    hull.set_down()
    result = status_check(connector)
    assert result.status == "ok"
    connector.refresh_from_db()
    assert connector.status == "ok"


def test_without_push_nothing_goes_to_hull(make_connector, hull):
    connector = make_connector()
    status_check(connector, push_to_hull=False)
    assert hull.statuses(connector.hull_id) == []


# --- /hull/status --------------------------------------------------------------------------

def status_url(connector, secret=HULL_SECRET, ship=None):
    return {"ship": ship or connector.hull_id, "organization": connector.hull_organization, "secret": secret}


@pytest.mark.parametrize("method", ["get", "post"])
def test_status_endpoint_runs_the_check_and_puts_it_to_hull(client, make_connector, hull, method):
    connector = make_connector(synchronized_segments=[])
    if method == "get":
        response = client.get("/hull/status", status_url(connector))
    else:
        query = "&".join(f"{k}={v}" for k, v in status_url(connector).items())
        response = client.post(f"/hull/status?{query}")

    assert response.status_code == 200
    assert response.json() == {"status": "warning", "messages": [NO_SEGMENTS]}
    assert hull.statuses(connector.hull_id) == [{"status": "warning", "messages": [NO_SEGMENTS]}]


def test_status_endpoint_reports_invalid_customerio_credentials(client, make_connector):
    connector = make_connector(api_key="wrong")
    response = client.get("/hull/status", status_url(connector))
    assert response.status_code == 200
    assert response.json() == {"status": "error", "messages": [INVALID_CREDENTIALS]}


@pytest.mark.parametrize("params", [
    lambda c: status_url(c, secret="wrong-secret"),
    lambda c: status_url(c, ship="5a9d5c3e2f8e4b00ffffffff"),
    lambda c: {"ship": c.hull_id, "organization": c.hull_organization},
    lambda c: {},
])
def test_status_endpoint_refuses_bad_credentials(client, make_connector, cio, hull, params):
    connector = make_connector()

    response = client.get("/hull/status", params(connector))

    assert response.status_code == 401
    assert HULL_SECRET not in response.content.decode()
    assert cio.stats()["requests"] == 0
    assert hull.statuses(connector.hull_id) == []
    assert Connector.objects.get(pk=connector.pk).status == "unknown"
