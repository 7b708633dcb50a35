"""`make soak`: mixed traffic for a bounded time, then drain and account for every delivery.

    python -m tests.soak [--minutes 10] [--drain-minutes 6] [--users 400] [--rate 40]

Runs gunicorn (2 workers) and 2 Celery workers as processes, the fake Customer.io and fake Hull in
this process, on loopback only, with a dedicated PostgreSQL database (recreated), Redis db and queue.
Traffic: smart-notifier notifications (newer versions of a pool of users, whitelisted and other
events, re-sent notifications), signed Customer.io webhooks (re-deliveries, unknown types, bad
signatures), bursts of Customer.io 500/503/429 and Hull 503 errors. This process plays Celery beat
(inbox_sweep and hull_writeback_sweep every 30 s). After the traffic, it drains (fast-forwarding
retry schedules) and checks:

  received = done + failed + ignored + rejected for both inboxes, zero pending;
  every user in fake Customer.io at its newest version, every whitelisted Hull event there once;
  every distinct forwardable webhook event in fake Hull once; the rate limit never exceeded.

Exit status 0 when every check passes, 1 otherwise.
"""
import argparse
import hashlib
import hmac
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import requests

from .procs import ROOT, SoakError, start_gunicorn, start_worker

SITE_ID, API_KEY = "soak-site", "soak-api-key"
HULL_ID, HULL_SECRET = "5a9d5c3e2f8e4b00500a4b01", "soak-hull-secret-0123456789abcdef"
SIGNING_KEY = "soak-signing-key"
BASE_TIME = datetime(2026, 1, 1, tzinfo=timezone.utc)
BEAT_SECONDS = 30


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="traffic duration (default 10)")
    parser.add_argument("--drain-minutes", type=float, default=6.0, help="time allowed to drain (default 6)")
    parser.add_argument("--users", type=int, default=400, help="pool of Hull users (default 400)")
    parser.add_argument("--rate", type=int, default=40, help="Customer.io requests/s, fake and connector (40)")
    parser.add_argument("--notifications-per-second", type=float, default=2.0)
    parser.add_argument("--webhooks-per-second", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--database-url", default=os.environ.get("SOAK_DATABASE_URL",
                                                                 "postgres://postgres@127.0.0.1:5432/soak"))
    parser.add_argument("--broker-url", default=os.environ.get("SOAK_BROKER_URL", "redis://127.0.0.1:6379/11"))
    return parser.parse_args(argv)


# --- setup ---------------------------------------------------------------------------------------

def recreate_database(url):
    import psycopg2

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name.replace("_", "").isalnum():
        raise SoakError(f"refusing odd database name {name!r}")
    admin = psycopg2.connect(host=parts.hostname, port=parts.port or 5432, user=parts.username or "postgres",
                             password=parts.password, dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def environment(args, fakes, queue):
    cio, hull = fakes
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": args.database_url, "CELERY_BROKER_URL": args.broker_url, "CELERY_QUEUE": queue,
        "CUSTOMERIO_TRACK_URL": cio.url, "HULL_FIREHOSE_URL": hull.url, "HTTP_BACKOFF_BASE": "0.1",
        "HTTP_BACKOFF_MAX": "2", "TASK_RETRY_BASE": "1", "CELERY_VISIBILITY_TIMEOUT": "120",
        "DATABASE_CONN_MAX_AGE": "60", "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "connector.settings",
    })
    return env


def migrate(env):
    import subprocess

    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=300)


def create_connector(args, hull):
    from connector.models import Connector

    connector = Connector.objects.create(
        name="Soak", hull_id=HULL_ID, hull_organization=hull.url, hull_secret=HULL_SECRET, site_id=SITE_ID,
        api_key=API_KEY, webhook_signing_key=SIGNING_KEY, synchronized_segments=["seg-1"],
        events_filter=["Signed Up"], synchronized_attributes=["traits_version"], rate_limit_per_second=args.rate)
    hull.add_connector(HULL_ID, HULL_SECRET)
    return connector


# --- traffic -------------------------------------------------------------------------------------

class Ledger:
    """What the driver sent and what the connector accepted, for the final accounting."""

    def __init__(self):
        self.lock = threading.Lock()
        self.versions = Counter()            # user → last version handed out
        self.accepted_version = {}           # user → newest version in an accepted notification
        self.uncertain = {}                  # user → versions in notifications whose answer we never got
        self.notification_ids = set()
        self.notification_posts = Counter()
        self.cio_event_ids = set()           # whitelisted Hull events accepted
        self.uncertain_event_ids = set()     # … in notifications whose answer we never got
        self.webhook_event_ids = set()       # forwardable webhook events accepted
        self.ignored_event_ids = set()
        self.rejected = 0
        self.webhook_posts = Counter()
        self.errors = Counter()

    def next_version(self, user):
        with self.lock:
            self.versions[user] += 1
            return self.versions[user]


def _message(user, version, rng):
    indexed = BASE_TIME + timedelta(seconds=version)
    events = []
    if rng.random() < 0.3:
        events.append({"event_id": str(uuid.uuid4()), "event": "Signed Up", "created_at": indexed.isoformat(),
                       "properties": {"plan": rng.choice(["free", "pro"])}, "context": {}})
    if rng.random() < 0.2:
        events.append({"event_id": str(uuid.uuid4()), "event": "page", "created_at": indexed.isoformat(),
                       "properties": {"url": "https://example.com"}, "context": {}})
    return {"user": {"id": user, "email": f"{user}@example.com", "external_id": f"ext-{user}",
                     "indexed_at": indexed.isoformat(), "created_at": "2025-01-01T00:00:00Z",
                     "segment_ids": ["seg-1"], "traits_version": version},
            "segments": [{"id": "seg-1", "name": "Soak users"}], "account": {}, "events": events,
            "changes": {}}


def notification_loop(url, args, ledger, stop, rng):
    session = requests.Session()
    sent = []
    interval = 1.0 / args.notifications_per_second
    while not stop.is_set():
        started = time.monotonic()
        if sent and rng.random() < 0.05:
            body, kind = rng.choice(sent), "duplicate"
        else:
            users = rng.sample(range(args.users), rng.randint(5, 40))
            messages = [_message(f"u{n}", ledger.next_version(f"u{n}"), rng) for n in users]
            body = {"notification_id": str(uuid.uuid4()), "channel": "user:update",
                    "configuration": {"id": HULL_ID, "organization": "soak", "secret": HULL_SECRET},
                    "connector": {"id": HULL_ID}, "messages": messages,
                    "segments": [{"id": "seg-1", "name": "Soak users"}]}
            kind = "new"
            sent = (sent + [body])[-50:]
        _post_notification(session, url, body, kind, ledger)
        stop.wait(max(0.0, interval - (time.monotonic() - started)))


def _post_notification(session, url, body, kind, ledger):
    try:
        response = session.post(f"{url}/hull/smart-notifier", json=body, timeout=30)
        ok = response.status_code == 200 and response.json()["flow_control"]["type"] == "next"
        status = response.status_code
    except requests.RequestException as err:
        ok, status = False, type(err).__name__
    with ledger.lock:
        ledger.notification_posts[f"{kind} {status}"] += 1
        for message in body["messages"]:
            user, version = message["user"]["id"], message["user"]["traits_version"]
            if ok:
                ledger.accepted_version[user] = max(version, ledger.accepted_version.get(user, 0))
                ledger.cio_event_ids.update(e["event_id"] for e in message["events"] if e["event"] == "Signed Up")
            else:
                ledger.uncertain.setdefault(user, set()).add(version)
                ledger.uncertain_event_ids.update(e["event_id"] for e in message["events"]
                                                  if e["event"] == "Signed Up")
        if ok:
            ledger.notification_ids.add(body["notification_id"])
        else:
            ledger.errors[f"notification {status}"] += 1


def _signed(body, key=SIGNING_KEY):
    timestamp = str(int(time.time()))
    signature = hmac.new(key.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-CIO-Timestamp": timestamp, "X-CIO-Signature": signature}


def webhook_loop(url, token, args, ledger, stop, rng):
    session = requests.Session()
    sent = []
    interval = 1.0 / args.webhooks_per_second
    metrics = ["opened", "clicked", "delivered", "sent", "bounced"]
    while not stop.is_set():
        started = time.monotonic()
        roll = rng.random()
        user = rng.randrange(args.users)
        event_id = f"01HSOAK{uuid.uuid4().hex[:19].upper()}"
        payload = {"event_id": event_id, "object_type": "email", "metric": rng.choice(metrics),
                   "timestamp": int(time.time()),
                   "data": {"delivery_id": f"d-{event_id}", "customer_id": f"ext-u{user}",
                            "identifiers": {"id": f"ext-u{user}", "email": f"u{user}@example.com"},
                            "recipient": f"u{user}@example.com", "subject": "Soak"}}
        kind, key = "new", SIGNING_KEY
        if sent and roll < 0.10:
            kind, body = "duplicate", rng.choice(sent)
        else:
            if roll < 0.15:
                kind, payload["object_type"], payload["metric"] = "unknown", "carrier_pigeon", "landed"
            elif roll < 0.18:
                kind, key = "bad-signature", "not-the-key"
            body = json.dumps(payload).encode()
            if kind in ("new", "unknown"):
                sent = (sent + [body])[-200:]
        _post_webhook(session, f"{url}/customerio/webhook/{token}", body, key, kind, ledger)
        stop.wait(max(0.0, interval - (time.monotonic() - started)))


def _post_webhook(session, url, body, key, kind, ledger):
    try:
        response = session.post(url, data=body, headers=_signed(body, key), timeout=30)
        status = response.status_code
    except requests.RequestException as err:
        status = type(err).__name__
    event_id = json.loads(body)["event_id"]
    with ledger.lock:
        ledger.webhook_posts[f"{kind} {status}"] += 1
        if kind == "bad-signature":
            if status == 401:
                ledger.rejected += 1
            else:
                ledger.errors[f"bad signature answered {status}"] += 1
        elif status != 200:
            ledger.errors[f"webhook {status}"] += 1
        elif json.loads(body)["object_type"] == "carrier_pigeon":
            ledger.ignored_event_ids.add(event_id)
        else:
            ledger.webhook_event_ids.add(event_id)


def fault_loop(fakes, stop, rng, injected):
    cio, hull = fakes
    while not stop.wait(rng.uniform(25, 45)):
        status = rng.choice([500, 503, 429])
        cio.fail_for(rng.uniform(3, 8), status=status, retry_after=1 if status == 429 else None)
        injected[f"Customer.io {status} burst"] += 1
        if rng.random() < 0.4:
            hull.fail_for(rng.uniform(3, 6), status=503)
            injected["Hull 503 burst"] += 1


def beat_loop(stop):
    from sync.tasks import hull_writeback_sweep
    from webhooks.services import inbox_sweep

    while not stop.wait(BEAT_SECONDS):
        inbox_sweep()
        hull_writeback_sweep()


# --- drain and accounting ------------------------------------------------------------------------

def outstanding():
    from sync.models import SyncState
    from webhooks.models import CustomerIOWebhook, HullNotification, InboxStatus

    open_states = [InboxStatus.PENDING, InboxStatus.FAILED]
    return (HullNotification.objects.filter(status__in=open_states).count()
            + CustomerIOWebhook.objects.filter(status__in=open_states).count()
            + SyncState.objects.filter(writeback_pending=True).count())


def fast_forward():
    """Make every retry due now (instead of waiting out the 30 s…1 h schedule), then sweep like beat."""
    from django.utils import timezone as dj_timezone

    from sync.tasks import hull_writeback_sweep
    from webhooks.models import CustomerIOWebhook, HullNotification, InboxStatus
    from webhooks.services import inbox_sweep

    past = dj_timezone.now() - timedelta(minutes=5)
    moved = 0
    for model in (HullNotification, CustomerIOWebhook):
        moved += model.objects.filter(status=InboxStatus.FAILED).exclude(next_attempt_at=None).update(
            next_attempt_at=past)
    moved += HullNotification.objects.filter(status=InboxStatus.PENDING, received_at__gt=past).update(
        received_at=past)
    inbox_sweep()
    hull_writeback_sweep()
    return moved


def drain(deadline):
    forwarded = 0
    while time.monotonic() < deadline:
        left = outstanding()
        if not left:
            return forwarded
        forwarded += fast_forward()
        time.sleep(5)
    return forwarded


def account(args, ledger, fakes, injected, timings):
    from webhooks.audit import audit_lines, inbox_audit

    cio, hull = fakes
    [audit] = inbox_audit(HULL_ID)
    notifications, webhooks = audit.inbox("hull notifications"), audit.inbox("customerio webhooks")
    checks = []

    def check(name, ok, detail):
        checks.append((name, ok, detail))

    for label, inbox, received in (("hull notifications", notifications, len(ledger.notification_ids)),
                                   ("customerio webhooks", webhooks,
                                    len(ledger.webhook_event_ids) + len(ledger.ignored_event_ids) + ledger.rejected)):
        states = inbox.counts
        settled = inbox.counts["done"] + inbox.failed + states["ignored"] + states["rejected"]
        check(f"{label}: rows = distinct deliveries accepted", inbox.total == received,
              f"{inbox.total} rows, {received} accepted")
        check(f"{label}: received = done + failed + ignored + rejected", inbox.total == settled,
              f"{inbox.total} = {states['done']} + {inbox.failed} + {states['ignored']} + {states['rejected']}")
        check(f"{label}: zero pending", states["pending"] == 0, f"{states['pending']} pending")
        check(f"{label}: every failure/ignore has a reason", inbox.consistent,
              f"{inbox.without_reason} without reason, {inbox.unknown_status} unknown")

    people = {p["id"]: p for p in cio.people()}
    wrong, missing = [], []
    for user, version in ledger.accepted_version.items():
        person = people.get(f"ext-{user}")
        allowed = {version} | {v for v in ledger.uncertain.get(user, ()) if v > version}
        if person is None:
            missing.append(user)
        elif person["attributes"].get("version") not in allowed:
            wrong.append((user, person["attributes"].get("version"), version))
    check("Customer.io: every user present", not missing, f"{len(people)} people, missing {missing[:5]}")
    check("Customer.io: every user at its newest version", not wrong, f"wrong {wrong[:5]}")
    events = cio.events()
    event_ids = [event["id"] for event in events]
    expected_events = len(ledger.cio_event_ids)
    possible_events = len(ledger.cio_event_ids | ledger.uncertain_event_ids)
    check("Customer.io: each whitelisted event exactly once",
          len(event_ids) == len(set(event_ids)) and expected_events <= len(event_ids) <= possible_events,
          f"{len(event_ids)} events ({len(set(event_ids))} distinct), {len(ledger.cio_event_ids)} sent")
    check("Customer.io: rate never exceeded", cio.max_requests_in_window(1.0) <= args.rate + 1
          and cio.stats()["throttled"] == 0,
          f"max {cio.max_requests_in_window(1.0)} req in 1 s (limit {args.rate}), "
          f"throttled {cio.stats()['throttled']}")
    hull_ids = [e["event_id"] for e in hull.events()]
    check("Hull: each forwardable webhook event exactly once",
          len(hull_ids) == len(set(hull_ids)) and set(hull_ids) == ledger.webhook_event_ids,
          f"{len(hull_ids)} events ({len(set(hull_ids))} distinct), {len(ledger.webhook_event_ids)} accepted")
    written = sum(1 for user in ledger.accepted_version if hull.traits(user).get("customerio/id") == f"ext-{user}")
    check("Hull: write-back traits for every synced user", written == len(ledger.accepted_version),
          f"{written} of {len(ledger.accepted_version)}")
    check("driver: no unexpected answers", not ledger.errors, dict(ledger.errors))

    print()
    print(f"Soak: {timings['traffic']:.1f} min of traffic, drained in {timings['drain']:.1f} min "
          f"({timings['forwarded']} retry schedules fast-forwarded)")
    print("Sent: notifications " + ", ".join(f"{k}: {v}" for k, v in sorted(ledger.notification_posts.items()))
          + " | webhooks " + ", ".join(f"{k}: {v}" for k, v in sorted(ledger.webhook_posts.items())))
    print("Injected: " + (", ".join(f"{k} ×{v}" for k, v in sorted(injected.items())) or "none")
          + f" | Customer.io answered {dict(sorted(cio.stats()['by_status'].items()))}"
          + f", Hull answered {dict(sorted(hull.stats()['by_status'].items()))}")
    print(f"Duplicates dropped by id: Customer.io {cio.stats()['duplicate_events']}, "
          f"Hull {hull.stats()['duplicate_events']}")
    print()
    print("\n".join(audit_lines(audit)))
    print()
    width = max(len(name) for name, _, _ in checks)
    for name, ok, detail in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name.ljust(width)}  {detail}")
    passed = all(ok for _, ok, _ in checks)
    print(f"\nRESULT: {'PASS' if passed else 'FAIL'}")
    return passed


# --- main ----------------------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    rng = random.Random(args.seed)
    from tests.fakes.customerio import FakeCustomerIO
    from tests.fakes.hull import FakeHull

    log_dir = tempfile.mkdtemp(prefix="soak-")
    queue = f"soak-{uuid.uuid4().hex[:8]}"
    processes = []
    with FakeCustomerIO(site_id=SITE_ID, api_key=API_KEY, rate_limit=args.rate) as cio, FakeHull() as hull:
        fakes = (cio, hull)
        env = environment(args, fakes, queue)
        os.environ.update(env)
        print(f"soak: database {args.database_url} (recreated), broker {args.broker_url}, queue {queue}, "
              f"logs {log_dir}", flush=True)
        recreate_database(args.database_url)
        migrate(env)
        import django

        django.setup()
        from connector.celery import app as celery_app

        connector = create_connector(args, hull)
        try:
            gunicorn, url = start_gunicorn(env, log_dir)
            processes.append(gunicorn)
            for _ in range(2):
                processes.append(start_worker(env, log_dir, queue, celery_app))
            passed = run(args, url, connector, fakes, rng)
        finally:
            for process in processes:
                process.stop()
            with celery_app.connection_for_write() as conn:
                conn.default_channel.queue_delete(queue)
    return 0 if passed else 1


def run(args, url, connector, fakes, rng):
    ledger, injected = Ledger(), Counter()
    stop, beat_stop = threading.Event(), threading.Event()
    threads = [
        threading.Thread(target=notification_loop, args=(url, args, ledger, stop, random.Random(rng.random()))),
        threading.Thread(target=webhook_loop, args=(url, connector.webhook_token, args, ledger, stop,
                                                    random.Random(rng.random()))),
        threading.Thread(target=fault_loop, args=(fakes, stop, random.Random(rng.random()), injected)),
    ]
    beat = threading.Thread(target=beat_loop, args=(beat_stop,))
    started = time.monotonic()
    for thread in threads + [beat]:
        thread.start()
    end = started + args.minutes * 60
    try:
        while time.monotonic() < end:
            time.sleep(min(30.0, max(0.0, end - time.monotonic())))
            print(f"  {int(time.monotonic() - started)}s: {sum(ledger.notification_posts.values())} notifications, "
                  f"{sum(ledger.webhook_posts.values())} webhooks sent, {outstanding()} outstanding", flush=True)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=40)
    traffic_end = time.monotonic()
    print(f"  traffic stopped; draining (up to {args.drain_minutes} min)", flush=True)
    forwarded = drain(time.monotonic() + args.drain_minutes * 60)
    beat_stop.set()
    beat.join(timeout=60)
    timings = {"traffic": (traffic_end - started) / 60, "drain": (time.monotonic() - traffic_end) / 60,
               "forwarded": forwarded}
    return account(args, ledger, fakes, injected, timings)


if __name__ == "__main__":
    sys.exit(main())
