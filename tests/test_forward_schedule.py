"""forward_schedule: one delayed forwarding run per burst of deliveries, with as few Redis calls as safe."""
import os

import pytest

from sync import scheduling
from webhooks import services
from webhooks.tasks import customerio_webhooks_forward

pytestmark = pytest.mark.skipif(not os.environ.get("CELERY_BROKER_URL", "").startswith("redis"),
                                reason="needs Redis (CELERY_BROKER_URL=redis://…), as in CI")
CONNECTOR_ID = 987001


@pytest.fixture
def enqueued(monkeypatch):
    calls = []
    monkeypatch.setattr(customerio_webhooks_forward, "apply_async",
                        lambda args, countdown=None: calls.append((tuple(args), countdown)))
    monkeypatch.setattr(services, "_forward_pending_until", {})
    client = services.redis_client()
    client.delete(f"{services.FORWARD_KEY}:{CONNECTOR_ID}")
    yield calls
    client.delete(f"{services.FORWARD_KEY}:{CONNECTOR_ID}")


@pytest.fixture
def with_broker(monkeypatch):
    """Tasks go to the broker (as in production) instead of running in-process."""
    monkeypatch.setitem(customerio_webhooks_forward.app.conf, "task_always_eager", False)


def test_a_burst_enqueues_one_delayed_run(enqueued, with_broker):
    for _ in range(5):
        services.forward_schedule(CONNECTOR_ID)
    assert enqueued == [((CONNECTOR_ID,), services.FORWARD_DELAY)]


def test_right_after_enqueueing_a_process_skips_redis(enqueued, with_broker, monkeypatch):
    services.forward_schedule(CONNECTOR_ID)
    services.redis_client().delete(f"{services.FORWARD_KEY}:{CONNECTOR_ID}")  # as if the run had started
    monkeypatch.setattr(scheduling, "redis_client", lambda: pytest.fail("Redis called within the window"))
    services.forward_schedule(CONNECTOR_ID)
    assert len(enqueued) == 1


def test_in_process_runs_never_skip(enqueued):
    assert customerio_webhooks_forward.app.conf.task_always_eager
    services.forward_schedule(CONNECTOR_ID)
    services.redis_client().delete(f"{services.FORWARD_KEY}:{CONNECTOR_ID}")
    services.forward_schedule(CONNECTOR_ID)
    assert len(enqueued) == 2
