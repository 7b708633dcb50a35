"""The benchmark scenarios. Each run gets a clean stack and returns ``{scenario: {metric: value}}``."""
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson
import requests

from . import payloads
from .loadgen import post_all
from .procs import CLOCK_TICKS, BenchError, postgres_cpu_ticks, postmaster_pid, wait_for
from .stack import HULL_ID, HULL_SECRET, SIGNING_KEY, AppStack, clean, queue_purge, tables_analyze
from .stats import percentile, per_thousand, rate


@dataclass
class Context:
    """What every scenario needs: arguments, the fakes, the connector, cached payloads."""

    args: object
    env: dict
    fakes: object
    connector: object
    log_dir: str
    cache: dict = field(default_factory=dict)
    stacks: list = field(default_factory=list)

    def stub(self):
        return payloads.connector_stub(HULL_ID, self.connector.hull_organization, HULL_SECRET)

    def cached(self, key, build):
        if key not in self.cache:
            self.cache[key] = build()
        return self.cache[key]

    def stack(self, label):
        stack = AppStack(self.env, self.log_dir, self.args.web_workers, label, self.args.profile)
        self.stacks.append(stack)
        return stack


class Deadline:
    """A per-run time budget shared by every wait of a scenario."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        left = self.end - time.monotonic()
        if left <= 0:
            raise BenchError("scenario time budget exhausted")
        return left


# HTTP load

def latency_figures(result):
    return {"p50_ms": percentile(result.latencies, 0.50) * 1000, "p99_ms": percentile(result.latencies, 0.99) * 1000}


def _check_statuses(result, errors, what):
    bad = {status: count for status, count in result.statuses.items() if not 200 <= status < 300}
    if bad:
        errors.append(f"{what}: non-2xx answers {bad}")


# database polls (raw SQL: cheap, no model instances)

def _scalar(sql, params=()):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def notification_statuses(prefix):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT status, count(*) FROM webhooks_hullnotification WHERE notification_id LIKE %s "
                       "GROUP BY status", [prefix + "%"])
        return dict(cursor.fetchall())


def processing_rate(prefix, workers):
    """Users/s of the workers alone: notifications finished between the first and the last completion.

    The first ``workers`` completions open the window, so they are not counted.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), sum(message_count), extract(epoch FROM max(processed_at) - min(processed_at)) "
                       "FROM webhooks_hullnotification WHERE notification_id LIKE %s AND status = 'done'",
                       [prefix + "%"])
        count, users, seconds = cursor.fetchone()
    if not count or count <= workers or not seconds:
        return None
    return users * (count - workers) / count / float(seconds)


def writebacks_pending():
    return _scalar("SELECT count(*) FROM sync_syncstate WHERE writeback_pending")


def queue_length(env):
    import redis

    return redis.Redis.from_url(env["CELERY_BROKER_URL"]).llen(env["CELERY_QUEUE"])


def _settled(fakes, env, deadline):
    """Wait until the queue is empty and the fakes saw no new request for a second."""
    last = [None]

    def quiet():
        counts = (fakes.cio_stats()["requests"], fakes.hull_stats()["requests"], queue_length(env))
        stable = counts == last[0] and counts[2] == 0
        last[0] = counts
        return stable

    wait_for(quiet, deadline.left(), "the queue to drain and the fakes to go quiet", interval=1.0)


def database_activity():
    """(sessions opened, seconds spent executing statements, commits) of the benchmark database so far."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions, active_time, xact_commit FROM pg_stat_database "
                       "WHERE datname = current_database()")
        sessions, active_ms, commits = cursor.fetchone()
    return sessions, active_ms / 1000.0, commits


def _measure_start(ctx, stack):
    """Watch the fakes and the harness too, and start the CPU window."""
    for process in (ctx.fakes.cio, ctx.fakes.hull):
        stack.rss.watch("fakes", process.pid)
    stack.rss.watch("harness", os.getpid(), tree=False)
    stack.postmaster = postmaster_pid()
    stack.db_activity = database_activity()
    stack.rss.mark()
    stack.postgres_mark = postgres_cpu_ticks(stack.postmaster) if stack.postmaster else None


def _rss(stack, figures, web=True, worker=True):
    stack.rss.sample()
    if web:
        figures["web_rss_mb"] = stack.rss.peak_mb("web")
    if worker:
        figures["worker_rss_mb"] = stack.rss.peak_mb("worker")
    busy = stack.rss.machine_busy_seconds()
    if busy is not None:
        ours = {role: stack.rss.cpu_seconds(role) for role in ("web", "worker", "fakes", "harness")}
        if getattr(stack, "postgres_mark", None) is not None:
            ours["postgres"] = (postgres_cpu_ticks(stack.postmaster) - stack.postgres_mark) / CLOCK_TICKS
        figures.update({f"cpu_{role}_s": seconds for role, seconds in ours.items()})
        figures["cpu_machine_s"] = busy
        figures["cpu_other_s"] = busy - sum(ours.values())
    if getattr(stack, "db_activity", None):
        time.sleep(0.6)  # PostgreSQL flushes session statistics at most every 500 ms
        now = database_activity()
        figures.update(pg_sessions=now[0] - stack.db_activity[0], pg_active_s=now[1] - stack.db_activity[1],
                       pg_commits=now[2] - stack.db_activity[2])


# scenarios

def new_user_bodies(ctx):
    return ctx.cached("new", lambda: payloads.notification_bodies(ctx.stub(), ctx.args.users, "new"))


def unchanged_user_bodies(ctx):
    return ctx.cached("unchanged", lambda: payloads.notification_bodies(
        ctx.stub(), ctx.args.users, "unchanged", indexed_minutes=1, with_events=False))


def run_outgoing(ctx, run, wanted, errors):
    """outgoing-new, then (on a restarted stack) outgoing-unchanged over the same users."""
    results = {}
    users = ctx.args.users
    bodies, events = new_user_bodies(ctx)
    deadline = Deadline(ctx.args.timeout)
    clean(ctx.fakes)
    stack = ctx.stack(f"r{run}-new")
    try:
        stack.start_web()
        stack.start_workers(ctx.args.workers)
        figures = _outgoing_new(ctx, stack, bodies, users + events, deadline, errors)
        stack.rss.sample()
        figures.update(web_rss_mb=stack.rss.peak_mb("web"), worker_rss_mb=stack.rss.peak_mb("worker"))
    finally:
        stack.stop()
    if "outgoing-new" in wanted:
        results["outgoing-new"] = figures
    if "outgoing-unchanged" in wanted:
        tables_analyze()
        deadline = Deadline(ctx.args.timeout)
        stack = ctx.stack(f"r{run}-unchanged")
        try:
            stack.start_web()
            stack.start_workers(ctx.args.workers)
            figures = _outgoing_unchanged(ctx, stack, unchanged_user_bodies(ctx)[0], deadline, errors)
        finally:
            stack.stop()
        results["outgoing-unchanged"] = figures
    return results


def _outgoing_new(ctx, stack, bodies, expected_ops, deadline, errors):
    users, fakes = ctx.args.users, ctx.fakes
    _measure_start(ctx, stack)
    load = post_all(f"{stack.base_url}/hull/smart-notifier", bodies, {"Content-Type": "application/json"})
    _check_statuses(load, errors, "outgoing-new smart-notifier")
    wait_for(lambda: fakes.cio_stats()["batch_operations"] >= expected_ops, deadline.left(),
             f"{expected_ops} operations to reach the fake Customer.io", interval=0.1)
    delivered = time.perf_counter()
    figures = {}
    _rss(stack, figures)
    people = len(fakes.cio_state()["people"])
    if people != users:
        errors.append(f"outgoing-new: {people} people in the fake Customer.io, expected {users}")
    wait_for(lambda: notification_statuses("new").get("pending", 0) == 0, deadline.left(), "notifications done")
    wait_for(lambda: writebacks_pending() == 0, deadline.left(), "write-backs to drain", interval=0.1)
    drained = time.perf_counter()
    _settled(fakes, ctx.env, deadline)
    statuses = notification_statuses("new")
    if statuses.get("done", 0) != len(bodies):
        errors.append(f"outgoing-new: notification rows {statuses}")
    cio, hull = fakes.cio_stats(), fakes.hull_stats()
    if hull["firehose_items"] < users:
        errors.append(f"outgoing-new: {hull['firehose_items']} write-back items for {users} users")
    seconds = delivered - load.started
    return {**figures, "users_per_s": rate(users, seconds), "seconds": seconds,
            "processing_users_per_s": processing_rate("new", ctx.args.workers),
            "cio_requests_per_1k": per_thousand(cio["requests"], users),
            "firehose_requests_per_1k": per_thousand(hull["firehose_requests"], users),
            "writeback_drain_s": drained - load.started, "cio_requests": cio["requests"],
            "firehose_requests": hull["firehose_requests"], "firehose_items": hull["firehose_items"],
            "ingest_seconds": load.seconds, "ingest_users_per_s": rate(users, load.seconds),
            "throttled": cio.get("throttled", 0)}


def _outgoing_unchanged(ctx, stack, bodies, deadline, errors):
    users, fakes = ctx.args.users, ctx.fakes
    before = fakes.cio_stats()["requests"]
    _measure_start(ctx, stack)
    load = post_all(f"{stack.base_url}/hull/smart-notifier", bodies, {"Content-Type": "application/json"})
    _check_statuses(load, errors, "outgoing-unchanged smart-notifier")

    def finished():
        statuses = notification_statuses("unchanged")
        return sum(statuses.values()) == len(bodies) and not statuses.get("pending")

    wait_for(finished, deadline.left(), "unchanged notifications to be processed", interval=0.05)
    ended = time.perf_counter()
    figures = {}
    _rss(stack, figures)
    statuses = notification_statuses("unchanged")
    if statuses.get("done", 0) != len(bodies):
        errors.append(f"outgoing-unchanged: notification rows {statuses}")
    seconds = ended - load.started
    return {**figures, "users_per_s": rate(users, seconds), "seconds": seconds,
            "processing_users_per_s": processing_rate("unchanged", ctx.args.workers),
            "cio_requests": fakes.cio_stats()["requests"] - before, "ingest_seconds": load.seconds,
            "ingest_users_per_s": rate(users, load.seconds)}


def run_ingest(ctx, run, errors):
    """Accept + store only: no worker runs, the queue is purged afterwards."""
    count = ctx.args.ingest_notifications
    bodies, _ = ctx.cached("ingest", lambda: payloads.notification_bodies(
        ctx.stub(), count * payloads.MESSAGES_PER_NOTIFICATION, "ingest"))
    clean(ctx.fakes)
    stack = ctx.stack(f"r{run}-ingest")
    try:
        stack.start_web()
        _measure_start(ctx, stack)
        load = post_all(f"{stack.base_url}/hull/smart-notifier", bodies, {"Content-Type": "application/json"})
        figures = {**latency_figures(load), "notifications_per_s": rate(load.ok, load.seconds)}
        figures["users_per_s"] = figures["notifications_per_s"] * payloads.MESSAGES_PER_NOTIFICATION
        _rss(stack, figures, worker=False)
    finally:
        stack.stop()
    _check_statuses(load, errors, "ingest")
    stored = _scalar("SELECT count(*) FROM webhooks_hullnotification")
    if stored != len(bodies):
        errors.append(f"ingest: {stored} rows stored for {len(bodies)} notifications")
    queue_purge()
    return {"ingest": figures}


def seed_known_users(connector, count):
    """SyncState rows as after a sync, so webhooks find their Hull user by Customer.io id."""
    from sync.models import SyncState

    now = datetime.now(timezone.utc)
    rows = []
    for number in range(count):
        uid = payloads.user_id(number)
        rows.append(SyncState(connector=connector, hull_user_id=uid, email=f"{uid}@example.com",
                              external_id=f"ext-{uid}", customerio_id=f"ext-{uid}", synced_at=now,
                              last_outcome="insert"))
    SyncState.objects.bulk_create(rows, batch_size=2000)


def run_webhooks(ctx, run, errors):
    """Phase A: accept with workers stopped. Phase B: new deliveries with workers running, until Hull has them."""
    from webhooks.models import CustomerIOWebhook

    count, known = ctx.args.webhooks, min(ctx.args.webhooks, ctx.args.users)
    url = f"/customerio/webhook/{ctx.connector.webhook_token}"
    stamp = int(time.time())
    accept = payloads.signed_webhooks(SIGNING_KEY, count, known, f"A{run}x", stamp)
    forward = payloads.signed_webhooks(SIGNING_KEY, count, known, f"B{run}x", stamp)
    deadline = Deadline(ctx.args.timeout)
    clean(ctx.fakes)
    seed_known_users(ctx.connector, known)
    tables_analyze()
    stack = ctx.stack(f"r{run}-webhooks")
    try:
        stack.start_web()
        _measure_start(ctx, stack)
        load = post_all(stack.base_url + url, accept)
        _check_statuses(load, errors, "webhooks accept")
        figures = {**latency_figures(load), "accepted_per_s": rate(load.ok, load.seconds)}
        CustomerIOWebhook.objects.filter(status="pending").update(status="ignored", reason="bench: accept phase")
        queue_purge()
        stack.start_workers(ctx.args.workers)
        _measure_start(ctx, stack)
        hull_before = ctx.fakes.hull_stats()["firehose_requests"]
        load = post_all(stack.base_url + url, forward)
        _check_statuses(load, errors, "webhooks forward phase")
        wait_for(lambda: CustomerIOWebhook.objects.filter(event_id__startswith=f"B{run}x", status="done").count()
                 >= count, deadline.left(), f"{count} webhooks forwarded", interval=0.1)
        forwarded = time.perf_counter()
        _settled(ctx.fakes, ctx.env, deadline)
        _rss(stack, figures)
    finally:
        stack.stop()
    events = sum(1 for event in ctx.fakes.session.get(f"{ctx.fakes.hull_url}/_fake/state?requests=0", timeout=120)
                 .json()["events"] if str(event.get("event_id", "")).startswith(f"B{run}x"))
    if events != count:
        errors.append(f"webhooks: fake Hull holds {events} of {count} forwarded events")
    requests_made = ctx.fakes.hull_stats()["firehose_requests"] - hull_before
    figures.update(forwarded_per_s=rate(events, forwarded - load.started),
                   events_per_firehose_request=(events / requests_made) if requests_made else None,
                   firehose_requests=requests_made, forward_p99_ms=latency_figures(load)["p99_ms"])
    return {"webhooks": figures}


def run_backfill(ctx, run, errors):
    """A generated extract through POST /hull/batch; users/s and the worker's peak RSS (at 10k lines too)."""
    from webhooks.models import HullNotification

    lines = ctx.args.backfill_lines
    deadline = Deadline(ctx.args.timeout)
    clean(ctx.fakes)
    extract_url = ctx.fakes.extract(f"bench-{run}", lines)
    stack = ctx.stack(f"r{run}-backfill")
    figures = {}
    try:
        stack.start_web()
        stack.start_workers(ctx.args.workers)
        _measure_start(ctx, stack)
        started = time.perf_counter()
        response = requests.post(f"{stack.base_url}/hull/batch", timeout=30, params={
            "ship": HULL_ID, "organization": ctx.connector.hull_organization, "secret": HULL_SECRET},
            json={"url": extract_url, "format": "json", "object_type": "user_report"})
        if response.status_code != 200:
            raise BenchError(f"/hull/batch answered {response.status_code}: {response.text[:200]}")

        def progress():
            row = HullNotification.objects.filter(kind="batch").values("status", "progress_done").first()
            if row and "worker_rss_at_10k_mb" not in figures and row["progress_done"] >= min(10_000, lines):
                stack.rss.sample()
                figures["worker_rss_at_10k_mb"] = stack.rss.peak_mb("worker")
            if row and row["status"] in ("failed", "failed_permanent"):
                raise BenchError(f"batch row failed: {HullNotification.objects.filter(kind='batch').first().reason}")
            return row and row["status"] == "done"

        try:
            wait_for(progress, deadline.left(), f"the {lines}-line extract to be synced", interval=0.25)
        except BenchError as err:
            done = HullNotification.objects.filter(kind="batch").values_list("progress_done", flat=True).first()
            errors.append(f"backfill: {err}; {done} of {lines} lines synced (users/s below is partial)")
            _rss(stack, figures)
            figures.update(users_per_s=rate(done or 0, time.perf_counter() - started), partial=True)
            return {"backfill": figures}
        ended = time.perf_counter()
        figures.update(users_per_s=rate(lines, ended - started), seconds=ended - started)
        _rss(stack, figures)
        try:
            wait_for(lambda: writebacks_pending() == 0, max(deadline.end - time.monotonic(), 30),
                     "backfill write-backs to drain", interval=0.2)
        except BenchError as err:
            errors.append(f"backfill: {err}")
    finally:
        stack.stop()
    operations = ctx.fakes.cio_stats()["batch_operations"]
    if operations < lines:
        errors.append(f"backfill: {operations} operations reached Customer.io for {lines} lines")
    return {"backfill": figures}


def run_limit(ctx, run, errors):
    """The irreducible in-process work: parse, one bulk upsert of N state rows, serialize the v2 bodies.

    Parsing and serializing use orjson, as the product does; the hash uses the canonical json encoding.
    """
    from django.db import connection, transaction

    from sync.models import SyncState

    bodies, _ = new_user_bodies(ctx)
    users = ctx.args.users
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE sync_syncstate RESTART IDENTITY")
    now = datetime.now(timezone.utc)
    started = time.perf_counter()
    notifications = [orjson.loads(body) for body in bodies]
    parsed = time.perf_counter()
    batches, rows = [], []
    for notification in notifications:
        operations = []
        for message in notification["messages"]:
            user = message["user"]
            attributes = {name: user.get(name) for name in payloads.SYNCHRONIZED_ATTRIBUTES}
            attributes.update(id=user["external_id"], email=user["email"])
            operations.append({"type": "person", "action": "identify", "identifiers": {"id": user["external_id"]},
                               "attributes": attributes})
            encoded = json.dumps(attributes, sort_keys=True, separators=(",", ":")).encode()
            rows.append(SyncState(connector_id=ctx.connector.pk, hull_user_id=user["id"], email=user["email"],
                                  external_id=user["external_id"], customerio_id=user["external_id"],
                                  payload_hash=hashlib.sha1(encoded).hexdigest(), last_payload=attributes,
                                  synced_at=now, last_indexed_at=now, last_outcome="insert",
                                  writeback_pending=True, updated_at=now))
        batches.append(orjson.dumps({"batch": operations}))
    serialized = time.perf_counter()
    with transaction.atomic():
        SyncState.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["connector", "hull_user_id"],
            update_fields=["email", "external_id", "customerio_id", "payload_hash", "last_payload", "synced_at",
                           "last_indexed_at", "last_outcome", "writeback_pending", "updated_at"])
    upserted = time.perf_counter()
    stored = SyncState.objects.count()
    if stored != users:
        errors.append(f"limit: {stored} state rows for {users} users")
    return {"limit": {"users_per_s": rate(users, upserted - started), "parse_ms": (parsed - started) * 1000,
                      "serialize_ms": (serialized - parsed) * 1000, "upsert_ms": (upserted - serialized) * 1000,
                      "batch_bytes": sum(len(b) for b in batches)}}
