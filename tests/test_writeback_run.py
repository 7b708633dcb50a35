import os

import pytest

from sync.tasks import writeback_run


def test_without_redis_every_run_goes_ahead(settings, monkeypatch):
    settings.CELERY_BROKER_URL = ""
    monkeypatch.delenv("RATE_LIMIT_REDIS_URL", raising=False)
    with writeback_run(1) as first, writeback_run(1) as second:
        assert first and second


@pytest.mark.skipif(not os.environ.get("CELERY_BROKER_URL", "").startswith("redis"),
                    reason="needs Redis (CELERY_BROKER_URL=redis://…), as in CI")
def test_only_one_writeback_runs_per_connector_at_a_time():
    with writeback_run(987654) as first:
        with writeback_run(987654) as second, writeback_run(987655) as other_connector:
            assert (first, second, other_connector) == (True, False, True)
    with writeback_run(987654) as again:
        assert again
