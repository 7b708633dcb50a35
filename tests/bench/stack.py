"""The benchmarked stack: dedicated database/Redis db/queue, the fakes, gunicorn and Celery workers.

``bench_environment`` must be applied to ``os.environ`` before Django is set up in the harness,
so the harness, gunicorn and the workers share one configuration.
"""
import json
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import requests

from . import payloads
from .procs import ROOT, BenchError, Process, RssSampler, free_port, wait_for

VENV_BIN = ROOT / ".venv" / "bin"
HULL_ID = "5be1c4000000000000000001"
HULL_SECRET = "bench-hull-secret-0123456789abcdef"
SITE_ID, API_KEY = "bench-site", "bench-key"
SIGNING_KEY = "bench-webhook-signing-key-0123456789"
APP_TABLES = ("sync_syncstate", "sync_synclog", "webhooks_hullnotification", "webhooks_customeriowebhook")
STARTUP_TIMEOUT = 90


def bench_environment(args):
    """Environment shared by the harness and every app process (dedicated DB, Redis db and queue)."""
    return {
        "DATABASE_URL": args.database_url,
        "CELERY_BROKER_URL": args.broker_url,
        "CELERY_QUEUE": args.queue,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789abcdef",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": args.log_level,
        "DJANGO_SETTINGS_MODULE": "connector.settings",
        "PYTHONUNBUFFERED": "1",
    }


def database_ensure(database_url):
    """Create the benchmark database if it is missing (connecting to the server's `postgres` db)."""
    import psycopg2

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin = psycopg2.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
                             user=parts.username or "postgres", password=parts.password, dbname="postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        admin.close()


class Fakes:
    """The two fakes as separate processes (as production peers would be)."""

    def __init__(self, env, log_dir):
        self.env, self.log_dir = env, log_dir
        self.cio = self.hull = None
        self.cio_url = self.hull_url = None
        self.session = requests.Session()

    def start(self):
        python = str(VENV_BIN / "python")
        self.cio = Process("fake-customerio", [python, "-m", "tests.fakes.customerio", "--port", "0",
                                               "--site-id", SITE_ID, "--api-key", API_KEY], self.env, self.log_dir)
        self.hull = Process("fake-hull", [python, "-m", "tests.fakes.hull", "--port", "0",
                                          "--connector", f"{HULL_ID}:{HULL_SECRET}"], self.env, self.log_dir)
        self.cio_url = self.cio.read_announced_url()
        self.hull_url = self.hull.read_announced_url()
        return self

    def stop(self):
        for process in (self.cio, self.hull):
            if process is not None:
                process.stop(timeout=5)

    def reset(self):
        for url in (self.cio_url, self.hull_url):
            self.session.post(f"{url}/_fake/reset", timeout=30).raise_for_status()

    def cio_stats(self):
        return self.session.get(f"{self.cio_url}/_fake/stats", timeout=30).json()

    def hull_stats(self):
        return self.session.get(f"{self.hull_url}/_fake/stats", timeout=30).json()

    def cio_state(self):
        return self.session.get(f"{self.cio_url}/_fake/state?requests=0", timeout=120).json()

    def extract(self, name, count):
        response = self.session.post(f"{self.hull_url}/_fake/extract", timeout=30, json={
            "name": name, "count": count, "segment_ids": [payloads.WHITELISTED_SEGMENT]})
        response.raise_for_status()
        return response.json()["url"]


def connector_import(env, hull_url, log_dir):
    """Create/update the benchmark connector through the documented command (DESIGN §4.4)."""
    config = {
        "name": "Benchmark", "hull_id": HULL_ID, "hull_organization": hull_url, "hull_secret": HULL_SECRET,
        "site_id": SITE_ID, "api_key": API_KEY, "region": "us", "webhook_signing_key": SIGNING_KEY,
        "synchronized_segments": [payloads.WHITELISTED_SEGMENT], "enable_user_deletion": False,
        "events_filter": list(payloads.EVENT_NAMES), "anonymous_events": False, "user_id_mapping": "external_id",
        "synchronized_attributes": list(payloads.SYNCHRONIZED_ATTRIBUTES), "rate_limit_per_second": 1000,
    }
    path = os.path.join(log_dir, "connector.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(config, handle)
    import subprocess

    result = subprocess.run([str(VENV_BIN / "python"), "manage.py", "connector_settings", "import", path],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise BenchError(f"connector import failed: {result.stderr.strip() or result.stdout.strip()}")
    from connector.models import Connector

    Connector.objects.filter(hull_id=HULL_ID).update(credentials_rejected_at=None)
    return Connector.objects.get(hull_id=HULL_ID)


class AppStack:
    """gunicorn serving connector.wsgi and N `celery worker --concurrency=1` processes."""

    def __init__(self, env, log_dir, web_workers, run_label, profile_dir=None):
        self.env, self.log_dir, self.web_workers = env, log_dir, web_workers
        self.run_label = run_label
        self.web = None
        self.workers = []
        self.base_url = None
        self.rss = RssSampler().start()
        self.profile_dir = profile_dir
        self.recorders = []
        self.profiles = []

    def _profile(self, role, pid):
        if self.profile_dir is None:
            return
        from .profiling import Recorder

        output = Path(self.profile_dir) / f"{self.run_label}-{role}-{pid}.txt"
        self.recorders.append(Recorder(pid, output))
        self.profiles.append((role, output))

    def start_web(self):
        port = free_port()
        command = [str(VENV_BIN / "gunicorn"), "connector.wsgi:application", "--bind", f"127.0.0.1:{port}",
                   "--workers", str(self.web_workers), "--graceful-timeout", "5", "--timeout", "60",
                   "--log-level", "warning"]
        self.web = Process(f"gunicorn-{self.run_label}", command, self.env, self.log_dir)
        self.base_url = f"http://127.0.0.1:{port}"
        self.rss.watch("web", self.web.pid)

        def ready():
            if not self.web.alive():
                raise BenchError(f"gunicorn exited; see {self.web.log_path}")
            try:
                return requests.get(f"{self.base_url}/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(ready, STARTUP_TIMEOUT, "gunicorn to answer /healthz", interval=0.2)
        self._profile("web", self.web.pid)

    def start_workers(self, count):
        from connector.celery import app

        first = len(self.workers)
        for number in range(first, first + count):
            command = [str(VENV_BIN / "celery"), "-A", "connector", "worker", "--concurrency=1",
                       "-Q", self.env["CELERY_QUEUE"], "--loglevel=WARNING", "--without-gossip", "--without-mingle",
                       "--without-heartbeat", "-n", f"bench{number}-{os.getpid()}@%h"]
            process = Process(f"worker{number}-{self.run_label}", command, self.env, self.log_dir)
            self.workers.append(process)
            self.rss.watch("worker", process.pid)

        def ready():
            for process in self.workers:
                if not process.alive():
                    raise BenchError(f"celery worker exited; see {process.log_path}")
            return len(app.control.ping(timeout=0.5) or []) >= len(self.workers)

        if count:
            wait_for(ready, STARTUP_TIMEOUT, "celery workers to answer ping", interval=0.2)
        for process in self.workers[first:]:
            self._profile("worker", process.pid)

    def worker_pids(self):
        return [process.pid for process in self.workers]

    def stop(self):
        self.rss.stop()
        for recorder in self.recorders:
            recorder.stop()
        self.recorders = []
        for process in self.workers:
            process.stop(timeout=20)
        if self.web is not None:
            process = self.web
            process.stop(timeout=10)
        self.workers, self.web = [], None


def clean(fakes):
    """Fresh state for a run: fakes reset, app tables truncated, the queue and unacked messages gone."""
    from django.db import connection

    fakes.reset()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(APP_TABLES)} RESTART IDENTITY")
    queue_purge()


def tables_analyze():
    """ANALYZE the app tables, as autovacuum would have long done on a live installation.

    The scenarios fill tables from empty within seconds; without statistics PostgreSQL plans the
    users' state lookup as a scan of every row of the connector (measured: 9 ms instead of 0.7 ms
    per 100-user notification), a cost no running installation pays.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {', '.join(APP_TABLES)}")


def queue_purge():
    """Purge the benchmark queue; drop the dedicated Redis db's unacked bookkeeping (no worker runs now).

    The app's own Redis keys (``cio:*``: rate-limit pacing, "forwarding already scheduled" markers)
    describe tasks that the purge just removed, so they go too.
    """
    import redis
    from django.conf import settings

    from connector.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(settings.CELERY_TASK_DEFAULT_QUEUE)
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete("unacked", "unacked_index", "unacked_mutex")
    for key in client.scan_iter("cio:*"):
        client.delete(key)


def log_dir_create():
    return tempfile.mkdtemp(prefix="hull-cio-bench-")
