"""Admin actions and change-page buttons (webhooks/actions.py), the connector status display and the per-user view."""
import json
from pathlib import Path

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from connector.models import Connector
from sync.models import SyncLog, SyncState
from tests.builders import hull_message, notification
from tests.fakes.customerio import FakeCustomerIO
from tests.fakes.hull import synthetic_users
from webhooks import actions
from webhooks.models import CustomerIOWebhook, HullNotification, InboxStatus
from webhooks.services import notification_store
from webhooks.status import NO_RECENT_WEBHOOK

SITE, KEY = "site-actions", "key-actions-SECRET-1"
HULL_SECRET = "hull-secret-actions-SECRET-0123456789"
SIGNING_KEY = "signing-key-actions-SECRET"
SECRETS = (KEY, HULL_SECRET, SIGNING_KEY)
WEBHOOK_FIXTURES = Path(__file__).parent / "fixtures" / "customerio"


@pytest.fixture
def connector(connector_factory, cio, hull):
    connector = connector_factory(hull_organization=hull.url, hull_secret=HULL_SECRET, site_id=SITE, api_key=KEY,
                                  webhook_signing_key=SIGNING_KEY, synchronized_segments=["seg-1"])
    hull.add_connector(connector.hull_id, HULL_SECRET)
    return connector


def changelist_url(model):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def change_url(obj):
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def texts(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


def run_action(client, capture, action, objs):
    """POST an admin action on the changelist, running what it enqueued (eager tasks) on commit."""
    model = type(objs[0])
    with capture(execute=True):
        response = client.post(changelist_url(model), {"action": action, "_selected_action": [o.pk for o in objs]})
    assert response.status_code == 302, response.content[:500]
    return texts(response)


def store_notification(connector, messages, capture):
    body = notification(connector, messages)
    with capture(execute=True):
        row, _ = notification_store(connector, body["notification_id"], "user:update", json.dumps(body),
                                    len(messages))
    row.refresh_from_db()
    return row


def webhook_row(connector, name="legacy_email_opened", **fields):
    body = (WEBHOOK_FIXTURES / f"{name}.json").read_text()
    payload = json.loads(body)
    defaults = {"event_id": payload["event_id"], "body": body, "status": InboxStatus.FAILED,
                "event_name": "Email Opened", "email": "sven@example.com"}
    return CustomerIOWebhook.objects.create(connector=connector, **{**defaults, **fields})


# --- HullNotification: retry failed ---------------------------------------------------------------

def test_retry_failed_notification_processes_it_again(admin_client, connector, cio, django_capture_on_commit_callbacks):
    cio.set_credentials(SITE, "rotated-away")
    row = store_notification(connector, [hull_message(user_id="u-retry")], django_capture_on_commit_callbacks)
    assert row.status == InboxStatus.FAILED
    cio.set_credentials(SITE, KEY)
    Connector.objects.filter(pk=connector.pk).update(credentials_rejected_at=None)
    done = HullNotification.objects.create(connector=connector, notification_id="n-done", body="{}",
                                           status=InboxStatus.DONE)

    messages = run_action(admin_client, django_capture_on_commit_callbacks, "retry_failed", [row, done])

    assert messages == ["1 failed notifications queued for processing. 1 selected rows had not failed and were "
                        "left alone."]
    row.refresh_from_db()
    assert (row.status, row.attempts) == (InboxStatus.DONE, 1)
    assert cio.person(id="ext-u-retry") is not None
    done.refresh_from_db()
    assert done.attempts == 0


def test_retry_failed_batch_row_resumes_the_extract(admin_client, connector, hull, cio,
                                                    django_capture_on_commit_callbacks):
    url = hull.serve_extract("retry", synthetic_users(250, ["seg-1"]))
    row = HullNotification.objects.create(connector=connector, kind=HullNotification.Kind.BATCH,
                                          notification_id="batch-retry", body=json.dumps({"url": url}),
                                          status=InboxStatus.FAILED_PERMANENT, attempts=20, progress_done=200,
                                          message_count=200)

    messages = run_action(admin_client, django_capture_on_commit_callbacks, "retry_failed", [row])

    assert messages == ["1 failed notifications queued for processing."]
    row.refresh_from_db()
    assert (row.status, row.progress_done) == (InboxStatus.DONE, 250)
    assert len(cio.people()) == 50


def test_notifications_retry_service_counts_only_failed_rows(connector):
    rows = [HullNotification.objects.create(connector=connector, notification_id=f"n{i}", body="{}", status=status,
                                            attempts=5)
            for i, status in enumerate([InboxStatus.FAILED, InboxStatus.FAILED_PERMANENT, InboxStatus.DONE])]

    count = actions.notifications_retry(HullNotification.objects.filter(pk__in=[r.pk for r in rows]))

    assert count == 2
    assert sorted(HullNotification.objects.values_list("status", "attempts")) == [
        (InboxStatus.DONE, 5), (InboxStatus.PENDING, 0), (InboxStatus.PENDING, 0)]


# --- CustomerIOWebhook: replay and mark ignored --------------------------------------------------

def test_replay_forwards_failed_webhooks_to_hull(admin_client, connector, hull, django_capture_on_commit_callbacks):
    failed = webhook_row(connector, reason="Hull firehose refused the request (HTTP 500)", attempts=20,
                         status=InboxStatus.FAILED_PERMANENT)
    rejected = webhook_row(connector, "legacy_email_sent", status=InboxStatus.REJECTED)

    messages = run_action(admin_client, django_capture_on_commit_callbacks, "replay", [failed, rejected])

    assert messages[0].startswith("1 webhooks queued for forwarding to Hull. 1 were left alone")
    failed.refresh_from_db()
    rejected.refresh_from_db()
    assert (failed.status, failed.reason, failed.attempts) == (InboxStatus.DONE, "", 1)
    assert rejected.status == InboxStatus.REJECTED
    assert [event["event"] for event in hull.events()] == ["Email Opened"]


def test_replay_leaves_ignored_webhooks_whose_type_is_still_unknown(connector, django_capture_on_commit_callbacks):
    ignored = webhook_row(connector, "unknown_event_type", status=InboxStatus.IGNORED, event_name="")
    mapped_now = webhook_row(connector, "legacy_email_clicked", status=InboxStatus.IGNORED, event_name="")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        count = actions.webhooks_replay(CustomerIOWebhook.objects.filter(pk__in=[ignored.pk, mapped_now.pk]))

    assert count == 1 and len(callbacks) == 1
    mapped_now.refresh_from_db()
    assert (mapped_now.status, mapped_now.event_name) == (InboxStatus.PENDING, "Email Link Clicked")
    assert CustomerIOWebhook.objects.get(pk=ignored.pk).status == InboxStatus.IGNORED


def test_mark_ignored(admin_client, connector, django_capture_on_commit_callbacks):
    failed = webhook_row(connector)
    done = webhook_row(connector, "legacy_email_sent", status=InboxStatus.DONE)

    messages = run_action(admin_client, django_capture_on_commit_callbacks, "mark_ignored", [failed, done])

    assert messages == ["1 webhooks marked ignored. 1 were already done, ignored or rejected and were left alone."]
    failed.refresh_from_db()
    done.refresh_from_db()
    assert (failed.status, failed.reason) == (InboxStatus.IGNORED, actions.MARKED_IGNORED)
    assert done.status == InboxStatus.DONE


# --- SyncState: resync; SyncLog: retry failed ------------------------------------------------------

def test_resync_re_sends_the_users_last_message(admin_client, connector, cio, django_capture_on_commit_callbacks):
    message = hull_message(user_id="u-resync", events=[])
    store_notification(connector, [message, hull_message(user_id="u-other")], django_capture_on_commit_callbacks)
    store_notification(connector, [message], django_capture_on_commit_callbacks)
    state = SyncState.objects.get(hull_user_id="u-resync")
    assert state.last_outcome == SyncState.Outcome.SKIP
    never_logged = SyncState.objects.create(connector=connector, hull_user_id="u-quiet", payload_hash="abc")
    updates_before = cio.person(id="ext-u-resync")["updated_count"]

    messages = run_action(admin_client, django_capture_on_commit_callbacks, "resync_users", [state, never_logged])

    assert messages == ["2 users marked for resync: their next Hull update is sent even if unchanged. 1 of them were "
                        "queued now from their last stored notification."]
    state.refresh_from_db()
    assert state.last_outcome == SyncState.Outcome.UPDATE
    assert cio.person(id="ext-u-resync")["updated_count"] == updates_before + 1
    assert SyncState.objects.get(hull_user_id="u-quiet").payload_hash == ""
    resync = HullNotification.objects.get(notification_id__startswith="resync-")
    assert (resync.status, resync.message_count) == (InboxStatus.DONE, 1)
    assert HULL_SECRET not in resync.body and "u-other" not in resync.body
    assert SyncState.objects.get(hull_user_id="u-other").last_outcome == SyncState.Outcome.INSERT


def test_retry_failed_logs_resyncs_users_and_replays_webhooks(admin_client, connector, cio, hull,
                                                             django_capture_on_commit_callbacks):
    store_notification(connector, [hull_message(user_id="u-log")], django_capture_on_commit_callbacks)
    outgoing = SyncLog.objects.create(connector=connector, action="outgoing.user.error", direction="outgoing",
                                      outcome="error", hull_user_id="u-log", reason="Customer.io refused")
    webhook = webhook_row(connector)
    incoming = SyncLog.objects.create(connector=connector, action="incoming.event.error", direction="incoming",
                                      outcome="error", source=f"webhook:{webhook.pk}")
    success = SyncLog.objects.filter(action="outgoing.user.success").first()

    messages = run_action(admin_client, django_capture_on_commit_callbacks, "retry_failed",
                          [outgoing, incoming, success])

    assert "1 users marked for resync" in messages[0] and "1 Customer.io webhooks queued for replay" in messages[0]
    assert SyncState.objects.get(hull_user_id="u-log").last_outcome == SyncState.Outcome.UPDATE
    webhook.refresh_from_db()
    assert webhook.status == InboxStatus.DONE
    assert len(hull.events()) == 1


# --- Connector: status check, region, token, resync, credentials ------------------------------------

def test_check_status_action_stores_and_reports_the_result(admin_client, connector, hull,
                                                           django_capture_on_commit_callbacks):
    messages = run_action(admin_client, django_capture_on_commit_callbacks, "check_status", [connector])

    assert messages == [f"{connector.name}: status warning — {NO_RECENT_WEBHOOK}"]
    connector.refresh_from_db()
    assert (connector.status, connector.status_messages) == ("warning", [NO_RECENT_WEBHOOK])
    assert hull.statuses(connector.hull_id) == [{"status": "warning", "messages": [NO_RECENT_WEBHOOK]}]


def test_check_status_button_shows_the_result_on_the_page(admin_client, connector, cio):
    CustomerIOWebhook.objects.create(connector=connector, body="{}", event_id="recent", status=InboxStatus.DONE)
    url = reverse("admin:connector_connector_check_status", args=[connector.pk])

    response = admin_client.post(url, follow=True)

    page = response.content.decode()
    assert response.redirect_chain == [(change_url(connector), 302)]
    assert f"{connector.name}: status ok" in page
    assert 'class="cio-badge cio-badge-ok"' in page
    assert cio.stats()["by_route"] == {"GET /api/v1/accounts/region": 1}
    assert not any(secret in page for secret in SECRETS)


def test_status_errors_show_as_a_red_badge_with_messages_in_the_changelist(admin_client, connector_factory):
    connector_factory(name="Broken", status="error", status_messages=["Invalid Credentials: Verify Site ID"])
    connector_factory(name="Fine", status="ok")

    page = admin_client.get(changelist_url(Connector)).content.decode()

    assert 'class="cio-badge cio-badge-error" title="Invalid Credentials: Verify Site ID"' in page
    assert 'class="cio-badge cio-badge-ok" title=""' in page


def test_change_page_shows_status_messages_and_last_check(admin_client, connector):
    Connector.objects.filter(pk=connector.pk).update(status="warning", status_messages=["Mind the gap"],
                                                    status_checked_at=timezone.now())

    page = admin_client.get(change_url(connector)).content.decode()

    assert "<li>Mind the gap</li>" in page and "cio-badge-warning" in page
    assert 'form="connector-action-check-status"' in page
    assert 'id="connector-action-check-status" method="post"' in page


def test_object_action_urls_accept_only_post(admin_client, connector):
    url = reverse("admin:connector_connector_rotate_token", args=[connector.pk])

    assert admin_client.get(url).status_code == 405
    assert admin_client.post(reverse("admin:connector_connector_rotate_token", args=[987654])).status_code == 404


def test_detect_region_stores_the_workspace_region(admin_client, connector, monkeypatch):
    with FakeCustomerIO(site_id=SITE, api_key=KEY, region="eu") as eu:
        monkeypatch.setenv("CUSTOMERIO_TRACK_URL", eu.url)
        response = admin_client.post(reverse("admin:connector_connector_detect_region", args=[connector.pk]),
                                     follow=True)

    assert f"{connector.name}: region changed to EU (track-eu.customer.io)." in response.content.decode()
    connector.refresh_from_db()
    assert connector.region == "eu"


def test_detect_region_reports_bad_credentials_without_the_key(admin_client, connector_factory, cio,
                                                                django_capture_on_commit_callbacks):
    wrong = connector_factory(site_id=SITE, api_key="wrong-key-SECRET")

    messages = run_action(admin_client, django_capture_on_commit_callbacks, "detect_region", [wrong])

    assert messages == [f"{wrong.name}: could not detect the region: Customer.io rejected the Site ID / API key "
                        "(HTTP 401)"]
    assert "wrong-key-SECRET" not in messages[0]


def test_detect_region_without_credentials(connector_factory, admin_client, django_capture_on_commit_callbacks):
    empty = connector_factory(site_id="", api_key="")

    messages = run_action(admin_client, django_capture_on_commit_callbacks, "detect_region", [empty])

    assert "Missing Credentials" in messages[0]


def test_rotate_token_changes_the_webhook_url(admin_client, client, connector):
    old_token = connector.webhook_token

    response = admin_client.post(reverse("admin:connector_connector_rotate_token", args=[connector.pk]), follow=True)

    connector.refresh_from_db()
    page = response.content.decode()
    assert connector.webhook_token != old_token
    assert f"http://testserver/customerio/webhook/{connector.webhook_token}" in page
    assert "the old URL no longer works" in page
    assert client.post(f"/customerio/webhook/{old_token}", "{}", content_type="application/json").status_code == 404


def test_connector_resync_users_clears_every_hash(admin_client, connector, django_capture_on_commit_callbacks):
    SyncState.objects.create(connector=connector, hull_user_id="a", payload_hash="h1")
    SyncState.objects.create(connector=connector, hull_user_id="b", payload_hash="h2")

    messages = run_action(admin_client, django_capture_on_commit_callbacks, "resync_users", [connector])

    assert messages[0].startswith(f"{connector.name}: 2 users will be re-sent")
    assert set(SyncState.objects.values_list("payload_hash", flat=True)) == {""}


def connector_form(connector, **overrides):
    data = {"name": connector.name, "hull_id": connector.hull_id, "hull_organization": connector.hull_organization,
            "site_id": connector.site_id, "region": connector.region, "synchronized_segments": "seg-1",
            "events_filter": "", "user_id_mapping": "external_id", "synchronized_attributes": "",
            "max_attribute_name_length": "150", "max_attribute_value_length": "1000",
            "max_identifier_value_length": "150", "webhook_timestamp_tolerance": "0", "rate_limit_per_second": "100",
            "retention_days": "30", "update_hull_traits": "on"}
    data.update(overrides)
    return data


def test_saving_a_new_api_key_lifts_the_credentials_pause(admin_client, connector):
    Connector.objects.filter(pk=connector.pk).update(credentials_rejected_at=timezone.now())

    response = admin_client.post(change_url(connector), connector_form(connector, api_key="brand-new-key"),
                                 follow=True)

    connector.refresh_from_db()
    assert connector.credentials_rejected_at is None and connector.api_key == "brand-new-key"
    assert "outgoing sync is no longer paused" in response.content.decode()


def test_saving_without_new_credentials_keeps_the_pause(admin_client, connector):
    Connector.objects.filter(pk=connector.pk).update(credentials_rejected_at=timezone.now())

    admin_client.post(change_url(connector), connector_form(connector, name="Renamed"))

    connector.refresh_from_db()
    assert connector.name == "Renamed" and connector.credentials_rejected_at is not None


# --- Connector page: backfill progress ------------------------------------------------------------------

def test_change_page_shows_backfill_progress(admin_client, connector):
    HullNotification.objects.create(connector=connector, kind=HullNotification.Kind.BATCH, notification_id="b1",
                                    body="{}", status=InboxStatus.DONE, progress_done=5000, message_count=5000)
    HullNotification.objects.create(connector=connector, kind=HullNotification.Kind.BATCH, notification_id="b2",
                                    body="{}", status=InboxStatus.PENDING, progress_done=1200, message_count=1200)

    page = admin_client.get(change_url(connector)).content.decode()

    assert "<td>5,000 / 5,000</td>" in page
    assert "<td>1,200 / …</td>" in page


# --- Per-user view -------------------------------------------------------------------------------------

@pytest.fixture
def user_rows(connector_factory):
    connector = connector_factory()
    state = SyncState.objects.create(connector=connector, hull_user_id="hull-jane", email="jane@example.com",
                                     external_id="ext-jane", customerio_id="ext-jane", last_outcome="skip",
                                     last_reason="User is not in any whitelisted segment.",
                                     last_payload={"id": "ext-jane", "plan": "gold"})
    blank = SyncState.objects.create(connector=connector, hull_user_id="hull-blank")
    log = lambda **f: SyncLog.objects.create(connector=connector, **f)  # noqa: E731
    rows = {
        "own": log(action="outgoing.user.skip", direction="outgoing", outcome="skip", hull_user_id="hull-jane",
                   reason="OWN-SKIP-REASON"),
        "incoming_by_id": log(action="incoming.event.success", direction="incoming", outcome="success",
                              customerio_id="ext-jane", event_id="IN-BY-ID"),
        "incoming_by_email": log(action="incoming.event.error", direction="incoming", outcome="error",
                                 email="jane@example.com", event_id="IN-BY-EMAIL"),
        "other_user": log(action="outgoing.user.skip", direction="outgoing", outcome="skip", hull_user_id="hull-bob",
                          reason="OTHER-USER-REASON"),
        "no_ids": log(action="incoming.event.error", direction="incoming", outcome="error", event_id="NO-IDS"),
    }
    other = connector_factory()
    SyncLog.objects.create(connector=other, action="outgoing.user.skip", direction="outgoing", outcome="skip",
                           hull_user_id="hull-jane", reason="OTHER-CONNECTOR")
    hooks = {
        "by_email": CustomerIOWebhook.objects.create(connector=connector, event_id="WH-EMAIL", body="{}",
                                                     email="jane@example.com", event_name="Email Opened"),
        "by_customer": CustomerIOWebhook.objects.create(connector=connector, event_id="WH-CUSTOMER", body="{}",
                                                        customer_id="ext-jane", event_name="Email Sent"),
        "other": CustomerIOWebhook.objects.create(connector=connector, event_id="WH-OTHER", body="{}",
                                                  email="bob@example.com"),
    }
    return {"state": state, "blank": blank, "logs": rows, "hooks": hooks}


def test_per_user_view_shows_decision_payload_logs_and_webhooks(admin_client, user_rows):
    page = admin_client.get(change_url(user_rows["state"])).content.decode()

    assert "User is not in any whitelisted segment." in page
    assert "cio-badge-skip" in page
    assert "&quot;plan&quot;: &quot;gold&quot;" in page
    for text in ("OWN-SKIP-REASON", "IN-BY-ID", "IN-BY-EMAIL", "WH-EMAIL", "WH-CUSTOMER"):
        assert text in page
    for text in ("OTHER-USER-REASON", "NO-IDS", "OTHER-CONNECTOR", "WH-OTHER"):
        assert text not in page
    assert change_url(user_rows["logs"]["own"]) in page


def test_per_user_view_of_a_user_without_ids_does_not_match_rows_without_ids(admin_client, user_rows):
    page = admin_client.get(change_url(user_rows["blank"])).content.decode()

    assert "NO-IDS" not in page and "WH-OTHER" not in page
    assert "No sync log for this user" in page and "No Customer.io webhook for this user" in page


@pytest.mark.parametrize("term", ["jane@example.com", "ext-jane", "hull-jane"])
def test_search_then_one_click_to_the_per_user_view(admin_client, user_rows, term):
    page = admin_client.get(changelist_url(SyncState), {"q": term}).content.decode()

    assert change_url(user_rows["state"]) in page
    assert "User is not in any whitelisted segment." in page


def test_sync_log_page_links_to_the_per_user_view(admin_client, user_rows):
    page = admin_client.get(change_url(user_rows["logs"]["own"])).content.decode()

    assert change_url(user_rows["state"]) in page
