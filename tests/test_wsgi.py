"""connector.wsgi: machine endpoints run the short middleware chain, everything else the full one."""
import io

import pytest
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from connector.handlers import ConnectorApplication
from tests.test_customerio_webhook import fixture, sign
from webhooks.models import CustomerIOWebhook

@pytest.fixture(scope="module")
def application():
    return ConnectorApplication()


@pytest.fixture
def keep_test_connection():
    """As Django's test client does: the test's transaction must outlive each request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def call(application, method, path, body=b"", headers=None):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "SERVER_NAME": "testserver", "SERVER_PORT": "80",
               "HTTP_HOST": "testserver", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
               "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json", **(headers or {})}
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"], answer["headers"] = int(status.split()[0]), dict(response_headers)

    answer["body"] = b"".join(application(environ, start_response))
    return answer


def test_building_the_handlers_leaves_the_settings_as_they_were():
    before = list(settings.MIDDLEWARE)
    ConnectorApplication()
    assert list(settings.MIDDLEWARE) == before
    assert set(settings.MACHINE_MIDDLEWARE) < set(settings.MIDDLEWARE)


@pytest.mark.django_db
def test_only_the_machine_prefixes_take_the_short_chain(application, keep_test_connection):
    health = call(application, "GET", "/healthz")
    unknown_webhook = call(application, "POST", "/customerio/webhook/unknown-token", b"{}")

    assert health["status"] == 200 and health["headers"]["X-Frame-Options"] == "DENY"
    assert unknown_webhook["status"] == 404 and "X-Frame-Options" not in unknown_webhook["headers"]


@pytest.mark.django_db
def test_a_webhook_through_the_application_is_stored_without_admin_middleware(
        application, keep_test_connection, connector_factory):
    connector = connector_factory(webhook_signing_key="signing-key-0123456789")
    body = fixture("email_opened")

    answer = call(application, "POST", f"/customerio/webhook/{connector.webhook_token}", body, sign(body))

    assert answer["status"] == 200, answer["body"]
    assert CustomerIOWebhook.objects.filter(connector=connector).count() == 1
    assert "Set-Cookie" not in answer["headers"] and "X-Frame-Options" not in answer["headers"]


@pytest.mark.django_db
def test_the_admin_through_the_application_keeps_csrf_and_frame_protection(application, keep_test_connection):
    answer = call(application, "GET", "/admin/login/")

    assert answer["status"] == 200
    assert "csrftoken=" in answer["headers"].get("Set-Cookie", "")
    assert answer["headers"]["X-Frame-Options"] == "DENY"
