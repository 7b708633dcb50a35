import os

import pytest

from sync import tasks
from sync.tasks import WRITEBACK_DELAY, writeback_schedule

needs_redis = pytest.mark.skipif(not os.environ.get("CELERY_BROKER_URL", "").startswith("redis"),
                                 reason="needs Redis (CELERY_BROKER_URL=redis://…), as in CI")


class Enqueued:
    def __init__(self, monkeypatch):
        self.calls = []
        monkeypatch.setattr(tasks.hull_writeback_task, "delay", lambda *args: self.calls.append(("now", args)))
        monkeypatch.setattr(tasks.hull_writeback_task, "apply_async",
                            lambda args, countdown=None: self.calls.append((countdown, tuple(args))))


def test_without_redis_every_schedule_runs_now(settings, monkeypatch):
    settings.CELERY_BROKER_URL = ""
    monkeypatch.delenv("RATE_LIMIT_REDIS_URL", raising=False)
    enqueued = Enqueued(monkeypatch)
    writeback_schedule(1)
    writeback_schedule(1)
    assert enqueued.calls == [("now", (1,)), ("now", (1,))]


@needs_redis
def test_a_burst_of_schedules_enqueues_one_delayed_run_per_connector(monkeypatch):
    enqueued = Enqueued(monkeypatch)
    client = tasks.redis_client()
    client.delete("cio:writeback:987654", "cio:writeback:987655")
    for _ in range(5):
        writeback_schedule(987654)
    writeback_schedule(987655)
    assert enqueued.calls == [(WRITEBACK_DELAY, (987654,)), (WRITEBACK_DELAY, (987655,))]
    client.delete("cio:writeback:987654")
    writeback_schedule(987654)
    assert enqueued.calls[-1] == (WRITEBACK_DELAY, (987654,))
    client.delete("cio:writeback:987654", "cio:writeback:987655")


@needs_redis
def test_a_failed_enqueue_does_not_block_the_next_schedule(monkeypatch, caplog):
    client = tasks.redis_client()
    client.delete("cio:writeback:987656")

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.hull_writeback_task, "apply_async", broker_down)
    writeback_schedule(987656)
    assert "the sweep will" in caplog.text
    assert not client.exists("cio:writeback:987656")


@needs_redis
@pytest.mark.django_db
def test_a_run_writes_a_bounded_number_of_batches_then_queues_the_next(monkeypatch, connector_factory):
    connector = connector_factory()
    written = []
    pending = [tasks.WRITEBACK_BATCH] * (tasks.WRITEBACK_BATCHES_PER_RUN + 2) + [7]
    monkeypatch.setattr(tasks, "hull_writeback", lambda c: written.append(pending.pop(0)) or written[-1])
    enqueued = Enqueued(monkeypatch)
    tasks.redis_client().delete(f"cio:writeback:{connector.pk}")

    tasks.hull_writeback_task.run(connector.pk)

    assert written == [tasks.WRITEBACK_BATCH] * tasks.WRITEBACK_BATCHES_PER_RUN
    assert enqueued.calls == [(0, (connector.pk,))]


@needs_redis
@pytest.mark.django_db
def test_a_failed_run_does_not_queue_another_at_once(monkeypatch, connector_factory):
    from sync.exceptions import PermanentAPIError

    connector = connector_factory()

    def hull_refuses(c):
        raise PermanentAPIError("Hull firehose refused the request", status=400)

    monkeypatch.setattr(tasks, "hull_writeback", hull_refuses)
    enqueued = Enqueued(monkeypatch)

    assert tasks.hull_writeback_task.run(connector.pk) == 0
    assert enqueued.calls == []
    assert not tasks.redis_client().exists(f"cio:writeback:{connector.pk}")
