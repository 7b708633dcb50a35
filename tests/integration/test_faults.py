"""Fault injection on the real stack: broker down, worker killed mid-batch, Customer.io errors and a
rejected key, Hull down, PostgreSQL unreachable. Outages are simulated with a loopback TCP proxy
(tests/integration/proxy.py) in front of the shared Redis and PostgreSQL, never by stopping them."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from django.db import connection
from django.utils import timezone

from connector.celery import app as celery_app
from connector.models import Connector
from sync.models import SyncLog, SyncState
from sync.tasks import hull_writeback_sweep
from tests.builders import hull_event, hull_message, notification
from webhooks.models import CustomerIOWebhook, HullNotification, InboxStatus
from webhooks.services import inbox_sweep
from webhooks.tasks import hull_notification_process

from .conftest import API_KEY, wait_until
from .proxy import TcpProxy
from .test_outgoing_e2e import all_done, post_notification

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WEBHOOKS_URL = "/customerio/webhook/{token}"


# --- processes under test ------------------------------------------------------------------------

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebProcess:
    """The connector served by gunicorn with its own environment (e.g. services behind a proxy)."""

    def __init__(self, env, workers=1):
        self.env, self.workers = env, workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def __enter__(self):
        command = [sys.executable, "-m", "gunicorn", "connector.wsgi:application", "-b", f"127.0.0.1:{self.port}",
                   "-w", str(self.workers), "--timeout", "30", "--graceful-timeout", "2", "--log-level", "warning"]
        self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, start_new_session=True)
        wait_until(self._healthy, timeout=30, interval=0.2, message="gunicorn to answer /healthz")
        return self

    def _healthy(self):
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def __exit__(self, *exc_info):
        _stop_group(self.process)


def _stop_group(process, sig=signal.SIGTERM):
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=5)


def start_worker(env, queue, concurrency=1):
    """One `celery worker` on a private queue, in its own process group; returns the Popen."""
    name = f"fault{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    command = [sys.executable, "-m", "celery", "-A", "connector", "worker", "--loglevel=WARNING",
               f"--concurrency={concurrency}", "-Q", queue, "--without-gossip", "--without-mingle",
               "--without-heartbeat", "-n", name]
    process = subprocess.Popen(command, cwd=ROOT, env={**env, "CELERY_QUEUE": queue}, start_new_session=True)
    wait_until(lambda: celery_app.control.ping(destination=[name], timeout=0.5), timeout=60,
               message=f"worker {name} to answer ping")
    return process


def pool_children(pid):
    """Pids of a process's children (the prefork pool processes of a celery worker)."""
    children = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        children.update(int(child) for child in text)
    return sorted(children)


@pytest.fixture
def private_queue(worker_env):
    queue = f"fault-{uuid.uuid4().hex[:8]}"
    yield queue
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_delete(queue)


def hold_first_batch(fake):
    """Make the fake Customer.io hold its first /api/v2/batch request until released, then apply it."""
    reached, release, calls = threading.Event(), threading.Event(), []
    original = fake._handle_v2_batch

    def handler(request):
        calls.append(time.monotonic())
        if len(calls) == 1:
            reached.set()
            release.wait(30)
        return original(request)

    fake._handle_v2_batch = handler
    return reached, release


def release_fake(fake, release):
    release.set()
    fake.__dict__.pop("_handle_v2_batch", None)


# --- payloads ------------------------------------------------------------------------------------

def webhook_body(n, email=None):
    email = email or f"cio{n}@example.com"
    return json.dumps({"event_id": f"01HFAULT{uuid.uuid4().hex[:10].upper()}{n:05d}", "object_type": "email",
                       "metric": "opened", "timestamp": 1717004000 + n,
                       "data": {"delivery_id": f"dlv-{n}", "identifiers": {"email": email}, "recipient": email,
                                "subject": "Hi"}}).encode()


def users_with_events(prefix, count, plan="pro"):
    return [hull_message(user_id=f"{prefix}{i}", traits_plan=plan, events=[hull_event("Signed Up", f"{prefix}{i}")])
            for i in range(count)]


def pending_rows_backdated(minutes=3):
    """What `inbox_sweep` sees after beat's interval: pending rows older than STALE_PENDING, failed rows due."""
    past = timezone.now() - timedelta(minutes=minutes)
    HullNotification.objects.filter(status=InboxStatus.PENDING).update(received_at=past)
    for model in (HullNotification, CustomerIOWebhook):
        model.objects.filter(status=InboxStatus.FAILED).exclude(next_attempt_at=None).update(next_attempt_at=past)


def assert_events_once(cio, expected):
    events = cio.events()
    ids = [event["id"] for event in events]
    assert len(ids) == len(set(ids)) == expected


# --- broker down ---------------------------------------------------------------------------------

@pytest.fixture
def broker_proxy(worker_env):
    url = urlsplit(worker_env["CELERY_BROKER_URL"])
    with TcpProxy(url.hostname, url.port or 6379) as proxy:
        yield proxy, {**worker_env, "CELERY_BROKER_URL": proxy.url("redis", url.path)}


def test_broker_down_deliveries_are_accepted_stored_and_swept_later(stack, live_connector, broker_proxy):
    proxy, env = broker_proxy
    connector = live_connector(events_filter=["Signed Up"], synchronized_attributes=["traits_plan"])
    with WebProcess(env) as web:
        proxy.cut()
        started = time.monotonic()
        notified = requests.post(f"{web.url}/hull/smart-notifier", json=notification(connector, users_with_events(
            "bd", 5)), timeout=20)
        hooked = requests.post(web.url + WEBHOOKS_URL.format(token=connector.webhook_token), data=webhook_body(1),
                               headers={"Content-Type": "application/json"}, timeout=20)
        elapsed = time.monotonic() - started
        ready = requests.get(f"{web.url}/readyz", timeout=20)

        assert notified.status_code == 200 and notified.json()["flow_control"]["type"] == "next"
        assert hooked.status_code == 200 and hooked.json()["status"] == "accepted"
        assert elapsed < 15, f"two requests took {elapsed:.1f}s with the broker down"
        assert ready.status_code == 503 and ready.json()["checks"] == {"database": True, "broker": False}
        assert HullNotification.objects.get().status == InboxStatus.PENDING
        assert CustomerIOWebhook.objects.get().status == InboxStatus.PENDING
        time.sleep(1)
        assert stack["cio"].people() == [] and stack["hull"].events() == []

        proxy.restore()
        pending_rows_backdated()
        assert inbox_sweep() == 2        # the notification row + one forward task for the connector's webhooks
        wait_until(all_done, timeout=60, message="the swept notification processed")
        wait_until(lambda: CustomerIOWebhook.objects.filter(status=InboxStatus.DONE).count() == 1, timeout=60,
                   message="the swept webhook forwarded")
        assert requests.post(f"{web.url}/hull/smart-notifier", json=notification(connector, []),
                             timeout=20).status_code == 200
    assert len(stack["cio"].people()) == 5
    assert_events_once(stack["cio"], 5)
    assert [e["event"] for e in stack["hull"].events()] == ["Email Opened"]


def test_broker_blackholed_requests_still_answer_quickly(stack, live_connector, broker_proxy):
    """Redis stops answering (packets dropped) after the web process connected to it: requests must not hang."""
    proxy, env = broker_proxy
    connector = live_connector()
    with WebProcess(env) as web:
        first = requests.post(f"{web.url}/hull/smart-notifier", json=notification(connector, [hull_message()]),
                              timeout=20)
        assert first.status_code == 200
        wait_until(all_done, timeout=60, message="the first notification processed")
        proxy.cut("blackhole")
        started = time.monotonic()
        try:
            status = requests.post(f"{web.url}/hull/smart-notifier",
                                   json=notification(connector, [hull_message()]), timeout=12).status_code
        except requests.Timeout:
            status = "timeout"
        elapsed = time.monotonic() - started
        proxy.restore()
    assert (status, elapsed < 8) == (200, True), f"answered {status} after {elapsed:.1f}s"
    assert HullNotification.objects.count() == 2


# --- worker killed in the middle of a batch ------------------------------------------------------

def _send_row(connector, messages, queue):
    row = HullNotification.objects.create(connector=connector, notification_id=f"kill-{uuid.uuid4().hex[:8]}",
                                          body=json.dumps(notification(connector, messages)),
                                          message_count=len(messages))
    hull_notification_process.apply_async((row.pk,), queue=queue)
    return row


def _assert_batch_delivered_once(cio, row, users):
    row.refresh_from_db()
    assert row.status == InboxStatus.DONE
    assert len(cio.people()) == users
    assert_events_once(cio, users)
    assert cio.stats()["duplicate_events"] == users       # the re-sent batch's events were dropped by id
    assert SyncLog.objects.filter(action="outgoing.user.success").count() == users
    assert SyncLog.objects.filter(action="outgoing.event.success").count() == users


def test_pool_process_killed_mid_batch_is_redelivered(stack, live_connector, worker_env, private_queue):
    cio = stack["cio"]
    connector = live_connector(events_filter=["Signed Up"], synchronized_attributes=["traits_plan"])
    worker = start_worker(worker_env, private_queue, concurrency=1)
    reached, release = hold_first_batch(cio)
    try:
        row = _send_row(connector, users_with_events("kc", 40), private_queue)
        assert reached.wait(30), "the batch never reached Customer.io"
        [child] = pool_children(worker.pid)
        os.kill(child, signal.SIGKILL)
        release_fake(cio, release)
        wait_until(lambda: HullNotification.objects.filter(pk=row.pk, status=InboxStatus.DONE).exists(),
                   timeout=60, message="the batch redelivered after the pool process died")
    finally:
        release_fake(cio, release)
        _stop_group(worker)
    _assert_batch_delivered_once(cio, row, 40)


def test_whole_worker_killed_mid_batch_is_redelivered_after_the_visibility_timeout(
        stack, live_connector, worker_env, private_queue):
    cio = stack["cio"]
    visibility = 4
    env = {**worker_env, "CELERY_VISIBILITY_TIMEOUT": str(visibility)}
    connector = live_connector(events_filter=["Signed Up"], synchronized_attributes=["traits_plan"])
    doomed = start_worker(env, private_queue, concurrency=1)
    reached, release = hold_first_batch(cio)
    survivor = None
    try:
        row = _send_row(connector, users_with_events("kw", 40), private_queue)
        assert reached.wait(30), "the batch never reached Customer.io"
        killed_at = time.monotonic()
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=10)
        release_fake(cio, release)
        assert HullNotification.objects.get(pk=row.pk).status == InboxStatus.PENDING   # rolled back, not lost
        time.sleep(max(0.0, visibility + 1 - (time.monotonic() - killed_at)))
        survivor = start_worker(env, private_queue, concurrency=1)
        wait_until(lambda: HullNotification.objects.filter(pk=row.pk, status=InboxStatus.DONE).exists(),
                   timeout=60, message="the unacknowledged batch restored after the visibility timeout")
    finally:
        release_fake(cio, release)
        _stop_group(doomed, signal.SIGKILL)
        _stop_group(survivor)
    _assert_batch_delivered_once(cio, row, 40)


# --- Customer.io errors --------------------------------------------------------------------------

def test_customerio_500_then_429_for_a_stretch_then_recovery(client, stack, live_connector):
    cio, rate = stack["cio"], 20
    cio.set_rate_limit(rate)
    connector = live_connector(rate_limit_per_second=rate, events_filter=["Signed Up"],
                               synchronized_attributes=["traits_plan"])
    cio.fail_for(3, status=500)
    later = threading.Timer(3, lambda: cio.fail_for(3, status=429, retry_after=1))
    later.start()
    try:
        for n in range(8):
            post_notification(client, connector, users_with_events(f"e{n}-", 10))
        time.sleep(3)
        assert HullNotification.objects.filter(status=InboxStatus.DONE).count() < 8
        wait_until(all_done, timeout=120, message="every notification delivered after the errors stopped")
    finally:
        later.cancel()
    statuses = cio.stats()["by_status"]
    assert statuses.get(500) and statuses.get(429)
    assert len(cio.people()) == 80
    assert_events_once(cio, 80)
    assert cio.stats()["throttled"] == 0
    assert cio.max_requests_in_window(1.0) <= rate + 1


def test_rejected_key_pauses_the_connector_until_it_is_fixed(client, stack, live_connector):
    cio = stack["cio"]
    connector = live_connector(api_key="a-wrong-key")
    post_notification(client, connector, [hull_message(user_id=f"k{i}") for i in range(5)])
    wait_until(lambda: HullNotification.objects.filter(status=InboxStatus.FAILED).count() == 1, timeout=60,
               message="the first notification failed on 401")
    connector.refresh_from_db()
    assert connector.credentials_rejected_at is not None and connector.status == Connector.Status.ERROR
    assert cio.stats()["by_status"] == {401: 1}                 # a 401 is not retried

    post_notification(client, connector, [hull_message(user_id=f"k{i}") for i in range(5, 10)])
    wait_until(lambda: HullNotification.objects.filter(status=InboxStatus.FAILED).count() == 2, timeout=60,
               message="the second notification failed without calling Customer.io")
    assert cio.stats()["requests"] == 1
    reasons = list(HullNotification.objects.values_list("reason", flat=True))
    assert all(reason for reason in reasons)
    assert any("paused" in reason for reason in reasons)
    assert inbox_sweep() == 0                                   # failed for a fix: not retried by the sweeper
    assert HullNotification.objects.filter(status=InboxStatus.FAILED, next_attempt_at=None).count() == 2

    connector.api_key, connector.credentials_rejected_at = API_KEY, None
    connector.save()
    failed = list(HullNotification.objects.filter(status=InboxStatus.FAILED).values_list("pk", flat=True))
    HullNotification.objects.filter(pk__in=failed).update(status=InboxStatus.PENDING, next_attempt_at=None)
    for pk in failed:
        hull_notification_process.delay(pk)
    wait_until(all_done, timeout=60, message="both notifications processed once the key was fixed")
    assert len(cio.people()) == 10


# --- Hull down -----------------------------------------------------------------------------------

def test_hull_down_keeps_writebacks_and_incoming_events_for_later_without_blocking_outgoing(
        client, stack, live_connector):
    cio, hull = stack["cio"], stack["hull"]
    connector = live_connector(events_filter=["Signed Up"])
    hull.set_down(True)
    try:
        post_notification(client, connector, users_with_events("h", 5))
        for n in range(3):
            response = client.post(WEBHOOKS_URL.format(token=connector.webhook_token),
                                   webhook_body(n, email=f"h{n}@example.com"), content_type="application/json")
            assert response.status_code == 200
        wait_until(all_done, timeout=60, message="outgoing sync done while Hull is down")
        assert len(cio.people()) == 5
        wait_until(lambda: CustomerIOWebhook.objects.filter(status=InboxStatus.FAILED).count() == 3, timeout=60,
                   message="incoming events failed for a retry")
        for row in CustomerIOWebhook.objects.all():
            assert row.next_attempt_at is not None and "Hull firehose" in row.reason
        time.sleep(1)
        assert SyncState.objects.filter(writeback_pending=True).count() == 5
        assert hull.events() == [] and hull.users() == {}
        assert hull_writeback_sweep() == 1       # beat keeps re-enqueueing the pending write-backs
    finally:
        hull.set_down(False)

    pending_rows_backdated()
    assert inbox_sweep() == 1
    wait_until(lambda: not SyncState.objects.filter(writeback_pending=True).exists(), timeout=60,
               message="write-backs flushed once Hull is back")
    wait_until(lambda: CustomerIOWebhook.objects.filter(status=InboxStatus.DONE).count() == 3, timeout=60,
               message="incoming events forwarded once Hull is back")
    assert sorted(hull.traits(f"h{i}")["customerio/id"] for i in range(5)) == [f"ext-h{i}" for i in range(5)]
    events = hull.events()
    assert len(events) == len({e["event_id"] for e in events}) == 3


# --- PostgreSQL unreachable ----------------------------------------------------------------------

@pytest.fixture
def database_proxy(worker_env):
    settings_dict = connection.settings_dict
    with TcpProxy(settings_dict["HOST"] or "127.0.0.1", settings_dict["PORT"] or 5432) as proxy:
        url = proxy.url("postgres", f"/{settings_dict['NAME']}", user=settings_dict["USER"])
        yield proxy, {**worker_env, "DATABASE_URL": url}


def _endpoint_statuses(web, connector, notification_id, event_body, extract_url):
    query = f"ship={connector.hull_id}&organization=x&secret={connector.hull_secret}"
    calls = {
        "smart-notifier": lambda: requests.post(f"{web.url}/hull/smart-notifier", json=notification(
            connector, [hull_message(user_id="db1")], notification_id=notification_id), timeout=20),
        "customerio webhook": lambda: requests.post(
            web.url + WEBHOOKS_URL.format(token=connector.webhook_token), data=event_body,
            headers={"Content-Type": "application/json"}, timeout=20),
        "batch": lambda: requests.post(f"{web.url}/hull/batch?{query}", json={"url": extract_url}, timeout=20),
        "status": lambda: requests.get(f"{web.url}/hull/status?{query}", timeout=20),
        "readyz": lambda: requests.get(f"{web.url}/readyz", timeout=20),
        "healthz": lambda: requests.get(f"{web.url}/healthz", timeout=20),
    }
    responses = {}
    for name, call in calls.items():
        try:
            responses[name] = call()
        except requests.RequestException as err:
            responses[name] = err
    return responses


def test_database_unreachable_endpoints_answer_503_and_resume_by_themselves(stack, live_connector, database_proxy):
    proxy, env = database_proxy
    connector = live_connector()
    event_body = webhook_body(7)
    extract = stack["hull"].serve_extract("empty", [])
    with WebProcess({**env, "DATABASE_CONN_MAX_AGE": "60"}) as web:
        warm = requests.post(f"{web.url}/hull/smart-notifier", json=notification(connector, []), timeout=20)
        assert warm.status_code == 200
        proxy.cut()
        down = _endpoint_statuses(web, connector, "during-outage", event_body, extract)
        proxy.restore()
        after = _endpoint_statuses(web, connector, "during-outage", event_body, extract)

    observed = {name: getattr(r, "status_code", repr(r)) for name, r in down.items()}
    assert observed == {"smart-notifier": 503, "customerio webhook": 503, "batch": 503, "status": 503,
                        "readyz": 503, "healthz": 200}
    assert down["smart-notifier"].json()["flow_control"]["type"] == "retry"
    assert {name: r.status_code for name, r in after.items()} == {
        "smart-notifier": 200, "customerio webhook": 200, "batch": 200, "status": 200, "readyz": 200,
        "healthz": 200}
    assert HullNotification.objects.filter(notification_id="during-outage").count() == 1
    assert CustomerIOWebhook.objects.count() == 1


def test_database_unreachable_nothing_half_written_and_hull_retry_succeeds(stack, live_connector, database_proxy):
    proxy, env = database_proxy
    connector = live_connector()
    with WebProcess(env) as web:
        proxy.cut()
        body = notification(connector, [hull_message(user_id=f"r{i}") for i in range(3)], notification_id="retry-me")
        refused = requests.post(f"{web.url}/hull/smart-notifier", json=body, timeout=20)
        assert refused.status_code == 503
        assert HullNotification.objects.count() == 0 and SyncState.objects.count() == 0
        proxy.restore()
        accepted = requests.post(f"{web.url}/hull/smart-notifier", json=body, timeout=20)
        again = requests.post(f"{web.url}/hull/smart-notifier", json=body, timeout=20)
    assert (accepted.status_code, again.status_code) == (200, 200)
    wait_until(all_done, timeout=60, message="the retried notification processed")
    assert HullNotification.objects.count() == 1
    assert len(stack["cio"].people()) == 3


def test_database_blackholed_new_connections_fail_fast_with_503(stack, live_connector, database_proxy):
    """PostgreSQL stops answering (packets dropped): a request must not wait for gunicorn to kill it."""
    proxy, env = database_proxy
    connector = live_connector()
    with WebProcess({**env, "DATABASE_CONN_MAX_AGE": "0"}) as web:
        proxy.cut("blackhole")
        started = time.monotonic()
        try:
            status = requests.post(f"{web.url}/hull/smart-notifier", json=notification(connector, []),
                                   timeout=12).status_code
        except requests.RequestException as err:
            status = type(err).__name__
        elapsed = time.monotonic() - started
        proxy.restore()
    assert (status, elapsed < 10) == (503, True), f"answered {status} after {elapsed:.1f}s"
