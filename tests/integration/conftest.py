"""Integration tests: PostgreSQL, a real Celery worker process on Redis, and the fakes over loopback."""
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from connector.celery import app as celery_app
from tests.fakes.customerio import FakeCustomerIO
from tests.fakes.hull import FakeHull

ROOT = Path(__file__).resolve().parents[2]
SITE_ID, API_KEY = "site-int", "key-int"
HULL_SECRET = "hull-integration-secret-0123456789abcdef"

pytestmark = pytest.mark.integration


def _needs_real_stack():
    broker = os.environ.get("CELERY_BROKER_URL", "")
    database = os.environ.get("DATABASE_URL", "")
    if not broker.startswith("redis") or not database.startswith("postgres"):
        pytest.skip("integration tests need DATABASE_URL=postgres… and CELERY_BROKER_URL=redis… (see .ci/run)")


def wait_until(predicate, timeout=60.0, interval=0.1, message="condition"):
    """Poll until predicate() is truthy; fail the test with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message}")


@pytest.fixture(scope="session")
def fake_cio():
    with FakeCustomerIO(site_id=SITE_ID, api_key=API_KEY) as fake:
        yield fake


@pytest.fixture(scope="session")
def fake_hull():
    with FakeHull() as fake:
        yield fake


@pytest.fixture(scope="session")
def stack_env(fake_cio, fake_hull):
    """Environment shared by this process and the worker: fakes' URLs, a private queue, short backoffs."""
    _needs_real_stack()
    env = {
        "CUSTOMERIO_TRACK_URL": fake_cio.url,
        "HULL_FIREHOSE_URL": fake_hull.url,
        "CELERY_QUEUE": f"test-{uuid.uuid4().hex[:8]}",
        "HTTP_BACKOFF_BASE": "0.02",
        "HTTP_BACKOFF_MAX": "0.2",
        "TASK_RETRY_BASE": "0.2",
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    celery_app.conf.task_default_queue = env["CELERY_QUEUE"]
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class WorkerPool:
    """Real `celery worker` processes consuming the session's queue from Redis."""

    def __init__(self, env):
        self.env = env
        self.processes = []

    def start(self, count=1, concurrency=2):
        for _ in range(count):
            command = [sys.executable, "-m", "celery", "-A", "connector", "worker", "--loglevel=WARNING",
                       f"--concurrency={concurrency}", "-Q", self.env["CELERY_QUEUE"], "--without-gossip",
                       "--without-mingle", "--without-heartbeat", "-n", f"w{uuid.uuid4().hex[:6]}@%h"]
            self.processes.append(subprocess.Popen(command, cwd=ROOT, env=self.env))
        wait_until(lambda: len(celery_app.control.ping(timeout=0.5) or []) >= len(self.processes), timeout=60,
                   message="celery workers to answer ping")

    def stop(self):
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes = []


@pytest.fixture(scope="session")
def worker_env(stack_env, django_db_setup, django_db_blocker):
    settings_dict = connection.settings_dict
    database_url = (f"postgres://{settings_dict['USER']}@{settings_dict['HOST'] or '127.0.0.1'}:"
                    f"{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}")
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge(stack_env["CELERY_QUEUE"])
    return {**os.environ, **stack_env, "DATABASE_URL": database_url, "DATABASE_CONN_MAX_AGE": "0"}


@pytest.fixture(scope="session")
def workers(worker_env):
    pool = WorkerPool(worker_env)
    pool.start()
    yield pool
    pool.stop()


@pytest.fixture
def stack(transactional_db, workers, fake_cio, fake_hull):
    """A clean stack for one test: fakes reset, one worker process running."""
    fake_cio.reset()
    fake_cio.set_credentials(SITE_ID, API_KEY)
    fake_cio.set_rate_limit(None)
    fake_hull.reset()
    yield {"cio": fake_cio, "hull": fake_hull, "workers": workers}


@pytest.fixture
def live_connector(stack, connector_factory):
    def make(**overrides):
        fields = {"hull_organization": stack["hull"].url, "hull_secret": HULL_SECRET, "site_id": SITE_ID,
                  "api_key": API_KEY, "rate_limit_per_second": 200}
        fields.update(overrides)
        connector = connector_factory(**fields)
        stack["hull"].add_connector(connector.hull_id, fields["hull_secret"])
        return connector

    return make
