import json

import pytest
from django.db import connection
from django.urls import reverse

from connector.admin import body_html, redact_secrets
from connector.models import Connector
from sync.models import SyncLog, SyncState
from webhooks.models import CustomerIOWebhook, HullNotification

HULL_SECRET = "plain-hull-secret-xyz"
API_KEY = "plain-api-key-xyz"
SIGNING_KEY = "plain-signing-key-xyz"
PLAINTEXTS = (HULL_SECRET, API_KEY, SIGNING_KEY)


def form_data(**overrides):
    data = {
        "name": "Acme", "hull_id": "5a9d5c3e2f8e4b0012340000", "hull_organization": "abc123.hullapp.io",
        "hull_secret": "", "site_id": "site-1", "api_key": "", "region": "eu",
        "synchronized_segments": "seg-1\n\n seg-2 \n", "events_filter": "page\nSigned Up",
        "user_id_mapping": "external_id", "synchronized_attributes": "first_name\ntraits_plan",
        "max_attribute_name_length": "150", "max_attribute_value_length": "1000",
        "max_identifier_value_length": "150", "webhook_url": "", "webhook_signing_key": "",
        "webhook_timestamp_tolerance": "0", "update_hull_traits": "on", "rate_limit_per_second": "100",
        "retention_days": "30",
    }
    data.update(overrides)
    return data


def change_url(obj):
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def changelist_url(model):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def add_url(model):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")


@pytest.fixture
def connector(connector_factory):
    return connector_factory(hull_secret=HULL_SECRET, api_key=API_KEY, webhook_signing_key=SIGNING_KEY)


def post_change(admin_client, connector, **overrides):
    data = form_data(**{"name": connector.name, "hull_id": connector.hull_id, **overrides})
    return admin_client.post(change_url(connector), data)


def raw_secret_columns(hull_id):
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT hull_secret, api_key, webhook_signing_key FROM {Connector._meta.db_table} WHERE hull_id = %s",
            [hull_id],
        )
        return cursor.fetchone()


def test_add_connector_through_the_admin_stores_encrypted_secrets(admin_client):
    data = form_data(hull_secret=HULL_SECRET, api_key=API_KEY, webhook_signing_key=SIGNING_KEY)

    response = admin_client.post(add_url(Connector), data)

    assert response.status_code == 302
    connector = Connector.objects.get(hull_id=data["hull_id"])
    assert (connector.hull_secret, connector.api_key, connector.webhook_signing_key) == PLAINTEXTS
    assert connector.synchronized_segments == ["seg-1", "seg-2"]
    assert connector.events_filter == ["page", "Signed Up"]
    assert (connector.region, connector.update_hull_traits, connector.enable_user_deletion) == ("eu", True, False)
    raw = raw_secret_columns(connector.hull_id)
    assert all(raw) and not any(secret in column for column in raw for secret in PLAINTEXTS)


def test_change_page_and_changelist_never_show_secrets(admin_client, connector):
    page = admin_client.get(change_url(connector)).content.decode()
    changelist = admin_client.get(changelist_url(Connector)).content.decode()

    assert connector.hull_id in changelist
    for secret in PLAINTEXTS:
        assert secret not in page and secret not in changelist
    assert 'type="password"' in page
    assert "Currently set" in page


def test_change_page_says_when_a_secret_is_not_set(admin_client, connector_factory):
    connector = connector_factory(webhook_signing_key="")

    page = admin_client.get(change_url(connector)).content.decode()

    assert "Currently not set" in page


def test_list_fields_are_edited_one_per_line(admin_client, connector):
    page = admin_client.get(change_url(connector)).content.decode()

    assert "seg-1</textarea>" in page


def test_blank_secret_keeps_the_stored_value(admin_client, connector):
    response = post_change(admin_client, connector, name="Renamed")

    assert response.status_code == 302
    connector.refresh_from_db()
    assert connector.name == "Renamed"
    assert (connector.hull_secret, connector.api_key, connector.webhook_signing_key) == PLAINTEXTS


def test_typed_secret_replaces_the_stored_value(admin_client, connector):
    post_change(admin_client, connector, api_key="new-api-key")

    connector.refresh_from_db()
    assert (connector.api_key, connector.hull_secret) == ("new-api-key", HULL_SECRET)


def test_clear_checkbox_removes_the_secret(admin_client, connector):
    response = post_change(admin_client, connector, clear_webhook_signing_key="on")

    assert response.status_code == 302
    connector.refresh_from_db()
    assert connector.webhook_signing_key == ""
    assert connector.api_key == API_KEY


def test_clear_and_a_new_value_together_are_rejected(admin_client, connector):
    response = post_change(admin_client, connector, api_key="new", clear_api_key="on")

    assert response.status_code == 200
    assert "not both" in response.content.decode()
    connector.refresh_from_db()
    assert connector.api_key == API_KEY


def test_writeback_attribute_is_rejected_with_a_reason(admin_client, connector):
    response = post_change(admin_client, connector, synchronized_attributes="email\ntraits_customerio/synced_at",
                           hull_secret="typed-new-secret")

    page = response.content.decode()
    assert response.status_code == 200
    assert "&quot;traits_customerio/synced_at&quot; cannot be mapped" in page
    assert "writes customerio/* traits back" in page
    assert "typed-new-secret" not in page and HULL_SECRET not in page
    connector.refresh_from_db()
    assert connector.hull_secret == HULL_SECRET


def test_bad_hull_organization_is_rejected(admin_client, connector):
    response = post_change(admin_client, connector, hull_organization="ftp://abc.hullapp.io")

    assert response.status_code == 200
    assert "must be a host like" in response.content.decode()


def test_webhook_url_is_built_from_the_request(admin_client, connector):
    page = admin_client.get(change_url(connector)).content.decode()

    assert f"http://testserver/customerio/webhook/{connector.webhook_token}" in page


def test_webhook_url_uses_public_base_url(admin_client, connector, monkeypatch):
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://cio.example.com")

    page = admin_client.get(change_url(connector)).content.decode()

    assert f"https://cio.example.com/customerio/webhook/{connector.webhook_token}" in page


def test_connector_changelist_search(admin_client, connector_factory):
    wanted = connector_factory(name="Wanted")
    connector_factory(name="Other")

    page = admin_client.get(changelist_url(Connector), {"q": wanted.hull_id}).content.decode()

    assert "Wanted" in page and "Other" not in page


HULL_BODY = {
    "notification_id": "notif-1",
    "channel": "user:update",
    "configuration": {"id": "5a9d", "organization": "abc123.hullapp.io", "secret": "hull-config-secret-987"},
    "connector": {"private_settings": {"api_key": "cio-api-key-654", "site_id": "site-visible"}},
    "messages": [{"user": {"email": "someone@example.com"}}],
}


@pytest.fixture
def rows(connector):
    other = {"email": "other@example.com"}
    return {
        SyncState: [
            SyncState.objects.create(connector=connector, hull_user_id="u1", email="someone@example.com",
                                     last_payload={"email": "someone@example.com"}),
            SyncState.objects.create(connector=connector, hull_user_id="u2", **other),
        ],
        SyncLog: [
            SyncLog.objects.create(connector=connector, action="outgoing.user.success", direction="outgoing",
                                   outcome="success", email="someone@example.com", data={"id": "x"}),
            SyncLog.objects.create(connector=connector, action="outgoing.user.skip", direction="outgoing",
                                   outcome="skip", **other),
        ],
        HullNotification: [
            HullNotification.objects.create(connector=connector, notification_id="notif-1",
                                            body=json.dumps(HULL_BODY), message_count=1),
            HullNotification.objects.create(connector=connector, notification_id="notif-2", body="{}"),
        ],
        CustomerIOWebhook: [
            CustomerIOWebhook.objects.create(connector=connector, event_id="ev-1", object_type="email",
                                             metric="opened", email="someone@example.com",
                                             body='{"event_id": "ev-1"}'),
            CustomerIOWebhook.objects.create(connector=connector, event_id="ev-2", body="{}", **other),
        ],
    }


LOG_MODELS = [SyncState, SyncLog, HullNotification, CustomerIOWebhook]


@pytest.mark.parametrize("model", LOG_MODELS)
def test_log_admin_changelist_and_change_page_render(admin_client, rows, model):
    changelist = admin_client.get(changelist_url(model))
    change = admin_client.get(change_url(rows[model][0]))

    assert changelist.status_code == 200 and change.status_code == 200
    assert 'name="_save"' not in change.content.decode()


@pytest.mark.parametrize("model", [SyncState, SyncLog, CustomerIOWebhook])
def test_log_admin_search_by_email(admin_client, rows, model):
    response = admin_client.get(changelist_url(model), {"q": "someone@example.com"})

    assert list(response.context["cl"].result_list) == [rows[model][0]]


@pytest.mark.parametrize("model, term", [(HullNotification, "notif-1"), (CustomerIOWebhook, "ev-1"),
                                         (SyncState, "u1")])
def test_log_admin_search_by_id(admin_client, rows, model, term):
    response = admin_client.get(changelist_url(model), {"q": term})

    assert list(response.context["cl"].result_list) == [rows[model][0]]


@pytest.mark.parametrize("model", LOG_MODELS)
def test_log_rows_cannot_be_added_or_deleted(admin_client, rows, model):
    obj = rows[model][0]
    delete_url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_delete", args=[obj.pk])

    assert admin_client.get(add_url(model)).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=obj.pk).exists()


def test_posting_a_log_change_page_changes_nothing(admin_client, rows):
    state = rows[SyncState][0]

    admin_client.post(change_url(state), {"email": "changed@example.com"})

    refreshed = SyncState.objects.get(pk=state.pk)
    assert (refreshed.email, refreshed.updated_at) == (state.email, state.updated_at)


def test_hull_notification_body_is_shown_with_secrets_redacted(admin_client, rows):
    page = admin_client.get(change_url(rows[HullNotification][0])).content.decode()

    assert "hull-config-secret-987" not in page and "cio-api-key-654" not in page
    assert "[redacted]" in page
    assert "site-visible" in page
    assert "<pre" in page


def test_redact_secrets_at_any_depth():
    data = {"token": "t", "a": [{"Password": "p", "b": {"webhook_signing_key": "k", "keep": 1}}]}

    assert redact_secrets(data) == {
        "token": "[redacted]", "a": [{"Password": "[redacted]", "b": {"webhook_signing_key": "[redacted]", "keep": 1}}]
    }


def test_body_that_is_not_json_is_still_redacted():
    html = body_html('{"configuration": {"secret": "abc\\"def", "id": "1"}, "trunc')

    assert "abc" not in html and "def" not in html
    assert "&quot;secret&quot;: &quot;[redacted]&quot;" in html
