"""Roles: `setup_roles` creates "Connector admins" and "Support"; support never reaches a secret or a connector."""
import json
from io import StringIO

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.urls import URLResolver, reverse

from connector.management.commands.setup_roles import CONNECTOR_ADMINS, SUPPORT, roles_setup
from connector.models import Connector
from sync.models import SyncLog, SyncState
from tests.builders import hull_message, notification
from webhooks.models import CustomerIOWebhook, HullNotification, InboxStatus

HULL_SECRET = "hull-secret-roles-SECRET-0123456789"
API_KEY = "api-key-roles-SECRET"
SIGNING_KEY = "signing-key-roles-SECRET"
OK_OR_REFUSED = {200, 403, 404, 405}


@pytest.fixture
def roles(db):
    roles_setup()


def member(username, group_name):
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group_name))
    return user


@pytest.fixture
def support(client, roles):
    client.force_login(member("support", SUPPORT))
    return client


@pytest.fixture
def connector_admin(client, roles):
    client.force_login(member("ops", CONNECTOR_ADMINS))
    return client


@pytest.fixture
def connector(connector_factory):
    return connector_factory(hull_secret=HULL_SECRET, api_key=API_KEY, webhook_signing_key=SIGNING_KEY)


@pytest.fixture
def secrets(connector):
    return (HULL_SECRET, API_KEY, SIGNING_KEY, connector.webhook_token)


@pytest.fixture
def objects(connector, admin_user, admin_client):
    """One row of every admin model; the connector also gets an admin history entry."""
    admin_client.post(reverse("admin:connector_connector_rotate_token", args=[connector.pk]))
    connector.refresh_from_db()
    body = notification(connector, [hull_message(user_id="u1")])
    return {
        ("connector", "connector"): connector,
        ("sync", "syncstate"): SyncState.objects.create(connector=connector, hull_user_id="u1", email="u1@example.com",
                                                        last_payload={"email": "u1@example.com"}),
        ("sync", "synclog"): SyncLog.objects.create(connector=connector, action="outgoing.user.skip",
                                                    direction="outgoing", outcome="skip", hull_user_id="u1",
                                                    data={"token": connector.webhook_token}),
        ("webhooks", "hullnotification"): HullNotification.objects.create(
            connector=connector, notification_id="n1", body=json.dumps(body), status=InboxStatus.FAILED),
        ("webhooks", "customeriowebhook"): CustomerIOWebhook.objects.create(
            connector=connector, event_id="e1", body=json.dumps({"event_id": "e1"}), status=InboxStatus.FAILED),
        ("auth", "user"): admin_user,
        ("auth", "group"): Group.objects.get(name=SUPPORT),
    }


def _routes(patterns, prefix):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern.name


def every_admin_url(objects):
    """A concrete URL for every admin URL pattern (new patterns are picked up automatically)."""
    connector = objects[("connector", "connector")]
    for route, name in _routes(admin.site.get_urls(), reverse("admin:index")):
        if name == "app_list":
            yield from (reverse("admin:app_list", args=[app]) for app in ("auth", "connector", "sync", "webhooks"))
        elif name == "view_on_site":
            yield reverse("admin:view_on_site",
                          args=[ContentType.objects.get_for_model(Connector).pk, connector.pk])
        elif route.endswith("(?P<url>.*)$"):
            yield reverse("admin:index") + "no/such/page/"
        elif name == "autocomplete":
            yield from (f"{reverse('admin:autocomplete')}?app_label={app}&model_name={model}&field_name=connector"
                        for app, model in objects if app in ("sync", "webhooks"))
        else:
            parts = route.split("/")
            row = objects.get(tuple(parts[2:4]))
            pk = str(row.pk) if row else "1"
            url = route.replace("<path:object_id>", pk).replace("<id>", pk)
            assert "<" not in url and "(" not in url, f"add a way to build {route}"
            yield url


# --- setup_roles ---------------------------------------------------------------------------------

def test_setup_roles_creates_both_groups_idempotently(db):
    out = StringIO()
    call_command("setup_roles", stdout=out)
    call_command("setup_roles", stdout=out)

    assert Group.objects.filter(name__in=[CONNECTOR_ADMINS, SUPPORT]).count() == 2
    support_perms = set(Group.objects.get(name=SUPPORT).permissions.values_list("codename", flat=True))
    admin_perms = set(Group.objects.get(name=CONNECTOR_ADMINS).permissions.values_list("codename", flat=True))
    assert {"view_synclog", "change_synclog", "view_syncstate", "change_customeriowebhook"} <= support_perms
    assert not any("connector" in codename for codename in support_perms)
    assert {"add_connector", "change_connector", "delete_connector", "view_connector"} <= admin_perms
    assert support_perms <= admin_perms
    assert "Support: " in out.getvalue()


# --- support -----------------------------------------------------------------------------------------

def test_support_never_sees_a_secret_on_any_admin_url(support, objects, secrets):
    visited = 0
    for url in every_admin_url(objects):
        response = support.get(url, follow=True)
        content = response.content.decode(errors="replace")
        assert response.status_code in OK_OR_REFUSED, url
        assert not [secret for secret in secrets if secret in content], url
        if "/connector/connector/" in url or "model_name=connector" in url:
            assert response.status_code == 403, url
        visited += 1
    assert visited > 40


@pytest.mark.parametrize("name", ["changelist", "add", "change", "history", "delete", "check_status",
                                  "detect_region", "rotate_token"])
def test_support_is_denied_every_connector_page_and_button(support, connector, name):
    args = [] if name in ("changelist", "add") else [connector.pk]
    url = reverse(f"admin:connector_connector_{name}", args=args)

    assert support.get(url).status_code == 403
    assert support.post(url, {"name": "hijacked", "post": "yes"}).status_code == 403
    connector.refresh_from_db()
    assert connector.name != "hijacked" and Connector.objects.filter(pk=connector.pk).exists()


def test_support_cannot_run_connector_actions(support, connector):
    token = connector.webhook_token

    response = support.post(reverse("admin:connector_connector_changelist"),
                            {"action": "rotate_webhook_token", "_selected_action": [connector.pk]})

    assert response.status_code == 403
    connector.refresh_from_db()
    assert connector.webhook_token == token


def test_support_index_lists_logs_but_not_connectors(support, objects):
    page = support.get(reverse("admin:index")).content.decode()

    assert "Sync states" in page and "Sync logs" in page
    assert "/admin/connector/connector/" not in page


def test_support_runs_retry_replay_and_resync(support, objects, django_capture_on_commit_callbacks):
    cases = [(HullNotification, "retry_failed"), (CustomerIOWebhook, "replay"), (SyncState, "resync_users"),
             (SyncLog, "retry_failed"), (CustomerIOWebhook, "mark_ignored")]
    for model, action in cases:
        row = objects[(model._meta.app_label, model._meta.model_name)]
        with django_capture_on_commit_callbacks(execute=False):
            response = support.post(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"),
                                    {"action": action, "_selected_action": [row.pk]})
        assert response.status_code == 302, (model, action)
    assert HullNotification.objects.get().status == InboxStatus.PENDING
    assert CustomerIOWebhook.objects.get().status == InboxStatus.IGNORED
    assert SyncState.objects.get().payload_hash == ""


def test_support_sees_redacted_notification_bodies(support, objects):
    row = objects[("webhooks", "hullnotification")]

    page = support.get(reverse("admin:webhooks_hullnotification_change", args=[row.pk])).content.decode()

    assert "[redacted]" in page and HULL_SECRET not in page


# --- connector admins ------------------------------------------------------------------------------

def test_connector_admin_edits_connectors_without_seeing_secrets(connector_admin, connector, secrets):
    page = connector_admin.get(reverse("admin:connector_connector_change", args=[connector.pk]))

    assert page.status_code == 200
    assert not [secret for secret in secrets[:3] if secret in page.content.decode()]
    response = connector_admin.post(reverse("admin:connector_connector_rotate_token", args=[connector.pk]))
    assert response.status_code == 302
    assert Connector.objects.get(pk=connector.pk).webhook_token != secrets[3]


def test_connector_admin_runs_log_actions_too(connector_admin, objects, django_capture_on_commit_callbacks):
    row = objects[("webhooks", "hullnotification")]

    with django_capture_on_commit_callbacks(execute=False):
        response = connector_admin.post(reverse("admin:webhooks_hullnotification_changelist"),
                                        {"action": "retry_failed", "_selected_action": [row.pk]})

    assert response.status_code == 302
    assert HullNotification.objects.get().status == InboxStatus.PENDING


def test_support_sees_the_connector_name_without_a_link_it_cannot_open(support, objects):
    connector = objects[("connector", "connector")]
    state = objects[("sync", "syncstate")]

    page = support.get(reverse("admin:sync_syncstate_change", args=[state.pk])).content.decode()

    assert connector.name in page
    assert reverse("admin:connector_connector_change", args=[connector.pk]) not in page
