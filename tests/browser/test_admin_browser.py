"""What admins and support staff do in Django admin, in a real browser (headless Chromium via Playwright)."""
import json
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from connector.models import Connector, SeenValue
from sync.models import SyncLog, SyncState
from tests.builders import hull_message, notification
from webhooks.models import CustomerIOWebhook, HullNotification, InboxStatus

HULL_SECRET = "hull-secret-browser-SECRET-0123456789"
API_KEY = "api-key-browser-SECRET"
SIGNING_KEY = "signing-key-browser-SECRET"
SKIP_REASON = "No users will be synchronized: the user is not in any whitelisted segment."


def make_connector(**overrides):
    fields = {"name": "Acme (Hull acme.hullapp.io ⇄ Customer.io EU)", "hull_id": "5a9d5c3e2f8e4b0012345678",
              "hull_organization": "acme.hullapp.io", "hull_secret": HULL_SECRET, "site_id": "acme-site-id",
              "api_key": API_KEY, "region": "eu", "webhook_signing_key": SIGNING_KEY,
              "synchronized_segments": ["seg-users", "seg-old-campaign"], "events_filter": ["Signed Up", "page"],
              "synchronized_attributes": ["first_name", "traits_plan"], "user_id_mapping": "external_id"}
    fields.update(overrides)
    return Connector.objects.create(**fields)


def see(connector, kind, value, label="", days_ago=0):
    SeenValue.objects.create(connector=connector, kind=kind, value=value, label=label,
                             last_seen_at=timezone.now() - timedelta(days=days_ago))


def traffic(connector):
    """What a connector has seen, a status check result and two backfills: the connector page's content."""
    for value, label in [("seg-users", "All users"), ("seg-paying", "Paying customers"), ("seg-trial", "Trials"),
                         ("seg-newsletter", "Newsletter subscribers")]:
        see(connector, SeenValue.Kind.SEGMENT, value, label)
    for value in ["Signed Up", "page", "Plan Upgraded", "Invoice Paid"]:
        see(connector, SeenValue.Kind.EVENT, value)
    for value in ["email", "external_id", "first_name", "last_name", "traits_plan", "traits_company/size"]:
        see(connector, SeenValue.Kind.ATTRIBUTE, value)
    Connector.objects.filter(pk=connector.pk).update(
        status="warning", status_checked_at=timezone.now(),
        status_messages=["No webhook received from Customer.io in the last 24 hours."])
    HullNotification.objects.create(connector=connector, kind=HullNotification.Kind.BATCH, notification_id="batch-1",
                                    body="{}", status=InboxStatus.DONE, progress_done=5000, message_count=5000)
    HullNotification.objects.create(connector=connector, kind=HullNotification.Kind.BATCH, notification_id="batch-2",
                                    body="{}", status=InboxStatus.PENDING, progress_done=1200, message_count=1200)


def user_history(connector):
    """A user support is asked about: skipped, with logs both ways and Customer.io webhooks."""
    state = SyncState.objects.create(
        connector=connector, hull_user_id="5f0c1a2b3c4d5e6f7a8b9c0d", email="jane@example.com",
        external_id="jane-42", customerio_id="jane-42", last_outcome=SyncState.Outcome.SKIP, last_reason=SKIP_REASON,
        synced_at=timezone.now() - timedelta(days=2), payload_hash="3f1c…",
        last_payload={"id": "jane-42", "email": "jane@example.com", "created_at": 1735689600,
                      "hull_segments": ["All users"], "first_name": "Jane", "plan": "gold"})
    common = {"connector": connector, "email": "jane@example.com", "external_id": "jane-42",
              "customerio_id": "jane-42"}
    SyncLog.objects.create(action="outgoing.user.success", direction="outgoing", outcome="success",
                           hull_user_id=state.hull_user_id, http_status=200, duration_ms=84, **common)
    SyncLog.objects.create(action="incoming.event.success", direction="incoming", outcome="success",
                           event_id="01J9Z5K2N8Q4W6E7R8T9Y0U1I2", **common)
    SyncLog.objects.create(action="outgoing.user.skip", direction="outgoing", outcome="skip",
                           hull_user_id=state.hull_user_id, reason=SKIP_REASON, **common)
    CustomerIOWebhook.objects.create(connector=connector, event_id="01J9Z5K2N8Q4W6E7R8T9Y0U1I2", body="{}",
                                     object_type="email", metric="opened", event_name="Email Opened",
                                     email="jane@example.com", customer_id="jane-42",
                                     hull_user_id=state.hull_user_id, status=InboxStatus.DONE)
    return state


def change_url(obj):
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def test_admin_creates_a_connector_and_copies_the_webhook_url(login, live_server):
    page = login("admin")
    page.goto(reverse("admin:connector_connector_add"))
    page.fill("#id_name", "Acme")
    page.fill("#id_hull_id", "5a9d5c3e2f8e4b0012345678")
    page.fill("#id_hull_organization", "acme.hullapp.io")
    page.fill("#id_hull_secret", HULL_SECRET)
    page.fill("#id_site_id", "acme-site-id")
    page.fill("#id_api_key", API_KEY)
    page.fill("#id_synchronized_segments", "seg-users")
    page.click("input[name=_continue]")
    page.wait_for_url("**/change/")

    connector = Connector.objects.get(hull_id="5a9d5c3e2f8e4b0012345678")
    expected = f"{live_server.url}/customerio/webhook/{connector.webhook_token}"
    assert page.input_value("#id_webhook_url") == expected
    page.click("#copy-webhook-url")
    page.wait_for_selector("#copy-webhook-url-feedback:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == expected
    assert (connector.api_key, connector.hull_secret) == (API_KEY, HULL_SECRET)
    source = page.content()
    assert API_KEY not in source and HULL_SECRET not in source


def test_admin_picks_segments_from_the_picker(login, screenshot):
    connector = make_connector()
    traffic(connector)
    page = login("admin")
    page.goto(change_url(connector))

    assert "seg-old-campaign (not seen recently)" in page.inner_text("#id_synchronized_segments_to")
    page.locator("#id_synchronized_segments_input").press_sequentially("pay")
    assert page.inner_text("#id_synchronized_segments_from").strip() == "Paying customers (seg-paying)"
    page.select_option("#id_synchronized_segments_from", "seg-paying")
    page.click("#id_synchronized_segments_add")
    page.locator("#id_synchronized_segments_input").clear()
    page.locator("#id_synchronized_segments_input").press("Backspace")
    screenshot(page, "connector-page.png")
    page.click("input[name=_save]")
    page.wait_for_url("**/connector/connector/")

    connector.refresh_from_db()
    assert sorted(connector.synchronized_segments) == ["seg-old-campaign", "seg-paying", "seg-users"]
    assert set(connector.events_filter) == {"page", "Signed Up"}
    assert connector.api_key == API_KEY


def test_support_searches_a_user_by_email_and_reads_the_skip_reason(login, screenshot):
    state = user_history(make_connector())
    page = login("support")
    page.goto(reverse("admin:sync_syncstate_changelist"))
    page.fill("#searchbar", "jane@example.com")
    page.press("#searchbar", "Enter")
    page.click("#result_list a:has-text('jane@example.com')")
    page.wait_for_url(f"**{change_url(state)}**")

    decision = page.inner_text("fieldset:has(h2:has-text('Last decision'))")
    assert SKIP_REASON in decision and "Skipped" in decision
    assert "outgoing.user.success" in page.inner_text("fieldset:has(h2:has-text('Recent sync logs'))")
    assert "Email Opened" in page.inner_text("fieldset:has(h2:has-text('Recent Customer.io webhooks'))")
    screenshot(page, "per-user-view.png")


def test_support_is_denied_the_connector_page_and_never_sees_a_secret(login):
    connector = make_connector()
    state = user_history(connector)
    body = notification(connector, [hull_message(user_id=state.hull_user_id)])
    inbox = HullNotification.objects.create(connector=connector, notification_id="n1", body=json.dumps(body))
    secrets = (HULL_SECRET, API_KEY, SIGNING_KEY, connector.webhook_token)
    page = login("support")

    response = page.goto(change_url(connector))
    assert response.status == 403
    assert "403 Forbidden" in page.content()

    pages = [reverse("admin:index"), reverse("admin:connector_connector_changelist"),
             reverse("admin:connector_connector_history", args=[connector.pk]),
             reverse("admin:connector_connector_delete", args=[connector.pk]), change_url(state), change_url(inbox),
             reverse("admin:sync_synclog_changelist"), reverse("admin:webhooks_hullnotification_changelist"),
             reverse("admin:webhooks_customeriowebhook_changelist"), reverse("admin:sync_syncstate_changelist")]
    for url in pages:
        response = page.goto(url)
        source = page.content()
        assert response.status in (200, 403), url
        assert not [secret for secret in secrets if secret in source], url
    page.goto(change_url(inbox))
    assert "[redacted]" in page.content()
    page.goto(reverse("admin:index"))
    assert page.locator("a[href*='/connector/connector/']").count() == 0


def test_admin_rotates_the_webhook_token_after_confirming(login, live_server):
    connector = make_connector()
    old_token = connector.webhook_token
    page = login("admin")
    page.goto(change_url(connector))
    assert page.is_visible("#connector-action-check-status-button")
    assert page.is_visible("#connector-action-detect-region-button")

    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#connector-action-rotate-token-button")
    assert Connector.objects.get(pk=connector.pk).webhook_token == old_token
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#connector-action-rotate-token-button")
    page.wait_for_selector(".messagelist")

    connector.refresh_from_db()
    assert connector.webhook_token != old_token
    assert page.input_value("#id_webhook_url") == f"{live_server.url}/customerio/webhook/{connector.webhook_token}"
    assert "the old URL no longer works" in page.inner_text(".messagelist")
