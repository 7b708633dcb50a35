import pytest

from connector.celery import app as celery_app
from connector.models import Connector
from tests.fakes.customerio import FakeCustomerIO
from tests.fakes.hull import FakeHull


@pytest.fixture(autouse=True)
def celery_eager(request):
    """Unit tests run tasks in-process; integration tests (marked) use a real worker instead."""
    eager = request.node.get_closest_marker("integration") is None
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = eager
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    """Keep HTTP retry sleeps short in tests; the backoff logic itself is unchanged."""
    monkeypatch.setenv("HTTP_BACKOFF_BASE", "0.01")
    monkeypatch.setenv("HTTP_BACKOFF_MAX", "0.05")


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Creating users with the production hasher costs most of a second each."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def connector_factory(db):
    """Create connectors with sensible defaults; keyword arguments override fields."""
    counter = {"n": 0}

    def make(**overrides):
        counter["n"] += 1
        fields = {
            "name": f"Test connector {counter['n']}",
            "hull_id": f"5a9d5c3e2f8e4b00123456{counter['n']:02d}",
            "hull_organization": "http://127.0.0.1:9",
            "hull_secret": "hull-secret-value-0123456789abcdef0123",
            "site_id": "site-id-1",
            "api_key": "api-key-value",
            "synchronized_segments": ["seg-1"],
            "user_id_mapping": "external_id",
        }
        fields.update(overrides)
        return Connector.objects.create(**fields)

    return make


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Tests never reach the Internet: default Hull and Customer.io URLs point at a closed loopback port."""
    monkeypatch.setenv("HULL_FIREHOSE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CUSTOMERIO_TRACK_URL", "http://127.0.0.1:9")


@pytest.fixture
def cio(request, monkeypatch):
    """An in-process fake Customer.io accepting the test module's SITE / KEY credentials; the app uses it."""
    with FakeCustomerIO(site_id=getattr(request.module, "SITE", "site"),
                        api_key=getattr(request.module, "KEY", "key")) as fake:
        monkeypatch.setenv("CUSTOMERIO_TRACK_URL", fake.url)
        yield fake


@pytest.fixture
def hull(monkeypatch):
    """An in-process fake Hull; the app's firehose URL points at it."""
    with FakeHull() as fake:
        monkeypatch.setenv("HULL_FIREHOSE_URL", fake.url)
        yield fake
