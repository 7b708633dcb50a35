"""Schemathesis against /api/schema/ on the Django WSGI app: generated requests never get a 5xx.

Path and query credentials are those of a real connector, so the generated bodies reach the views
behind authentication. Nothing is processed (tasks are enqueued on commit, which never happens here).
"""
import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in requirements-dev.txt")

from django.core.wsgi import get_wsgi_application  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

HULL_SECRET = "hull-secret-schemathesis-0123456789"


CLOSED_PORT = "http://127.0.0.1:9"     # loopback discard port: outgoing calls fail fast and stay on this machine


@pytest.fixture
def connector(connector_factory, monkeypatch):
    monkeypatch.setenv("CUSTOMERIO_TRACK_URL", CLOSED_PORT)
    monkeypatch.setenv("HULL_FIREHOSE_URL", CLOSED_PORT)
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "1")
    return connector_factory(hull_secret=HULL_SECRET, hull_organization=CLOSED_PORT)


schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests_never_get_a_server_error(case, connector):
    if "webhook_token" in (case.path_parameters or {}):
        case.path_parameters["webhook_token"] = connector.webhook_token
    if case.path in ("/hull/batch", "/hull/status"):
        case.query = {**(case.query or {}), "ship": connector.hull_id, "organization": "o", "secret": HULL_SECRET}
    case.call_and_validate(checks=[not_a_server_error])
