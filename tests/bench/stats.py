"""Pure reporting helpers of the benchmark: summaries, targets, the printed table (no I/O)."""
import math
import statistics
from dataclasses import dataclass

SCENARIOS = ("limit", "outgoing-new", "outgoing-unchanged", "ingest", "webhooks", "backfill")


@dataclass(frozen=True)
class Metric:
    """One figure a scenario reports; ``vs_limit`` marks rates comparable to the limit (items/s)."""

    scenario: str
    key: str
    label: str
    unit: str
    vs_limit: bool = False


@dataclass(frozen=True)
class Target:
    """A goal for one metric: ``op`` is ">=", "<=" or "==" against ``value``."""

    scenario: str
    key: str
    op: str
    value: float
    label: str

    def check(self, measured):
        """True when the measured value meets the target; None when nothing was measured."""
        if measured is None:
            return None
        if self.op == ">=":
            return measured >= self.value
        if self.op == "<=":
            return measured <= self.value
        return measured == self.value


METRICS = (
    Metric("limit", "users_per_s", "in-process limit", "users/s"),
    Metric("limit", "parse_ms", "parse notifications", "ms"),
    Metric("limit", "upsert_ms", "bulk upsert of state rows", "ms"),
    Metric("limit", "serialize_ms", "map, hash, serialize v2 bodies", "ms"),
    Metric("outgoing-new", "users_per_s", "end to end", "users/s", vs_limit=True),
    Metric("outgoing-new", "vs_limit", "end to end ÷ limit", "ratio"),
    Metric("outgoing-new", "ingest_users_per_s", "  web accept rate in the run", "users/s", vs_limit=True),
    Metric("outgoing-new", "processing_users_per_s", "  worker processing rate", "users/s", vs_limit=True),
    Metric("outgoing-new", "cio_requests_per_1k", "Customer.io requests", "/1k users"),
    Metric("outgoing-new", "firehose_requests_per_1k", "firehose requests", "/1k users"),
    Metric("outgoing-new", "writeback_drain_s", "write-backs drained after", "s"),
    Metric("outgoing-new", "cpu_worker_s", "CPU workers", "s"),
    Metric("outgoing-new", "cpu_web_s", "CPU web", "s"),
    Metric("outgoing-new", "cpu_fakes_s", "CPU fakes", "s"),
    Metric("outgoing-new", "cpu_postgres_s", "CPU PostgreSQL (all databases)", "s"),
    Metric("outgoing-new", "cpu_other_s", "CPU rest of the machine", "s"),
    Metric("outgoing-new", "pg_active_s", "bench db: statement time", "s"),
    Metric("outgoing-new", "pg_sessions", "bench db: connections opened", "sessions"),
    Metric("outgoing-new", "pg_commits", "bench db: commits", "commits"),
    Metric("outgoing-new", "web_rss_mb", "peak RSS web", "MB"),
    Metric("outgoing-new", "worker_rss_mb", "peak RSS worker", "MB"),
    Metric("outgoing-unchanged", "users_per_s", "unchanged users", "users/s", vs_limit=True),
    Metric("outgoing-unchanged", "ingest_users_per_s", "  web accept rate in the run", "users/s", vs_limit=True),
    Metric("outgoing-unchanged", "processing_users_per_s", "  worker processing rate", "users/s", vs_limit=True),
    Metric("outgoing-unchanged", "cio_requests", "Customer.io requests", "requests"),
    Metric("outgoing-unchanged", "cpu_worker_s", "CPU workers", "s"),
    Metric("outgoing-unchanged", "cpu_web_s", "CPU web", "s"),
    Metric("outgoing-unchanged", "cpu_postgres_s", "CPU PostgreSQL (all databases)", "s"),
    Metric("outgoing-unchanged", "cpu_other_s", "CPU rest of the machine", "s"),
    Metric("outgoing-unchanged", "pg_active_s", "bench db: statement time", "s"),
    Metric("outgoing-unchanged", "pg_sessions", "bench db: connections opened", "sessions"),
    Metric("outgoing-unchanged", "web_rss_mb", "peak RSS web", "MB"),
    Metric("outgoing-unchanged", "worker_rss_mb", "peak RSS worker", "MB"),
    Metric("ingest", "p50_ms", "smart-notifier p50", "ms"),
    Metric("ingest", "p99_ms", "smart-notifier p99", "ms"),
    Metric("ingest", "notifications_per_s", "accepted", "notif./s"),
    Metric("ingest", "users_per_s", "accepted (users)", "users/s", vs_limit=True),
    Metric("ingest", "web_rss_mb", "peak RSS web", "MB"),
    Metric("webhooks", "accepted_per_s", "accepted", "webhooks/s", vs_limit=True),
    Metric("webhooks", "p50_ms", "webhook p50", "ms"),
    Metric("webhooks", "p99_ms", "webhook p99", "ms"),
    Metric("webhooks", "forwarded_per_s", "forwarded to Hull (workers on)", "events/s", vs_limit=True),
    Metric("webhooks", "events_per_firehose_request", "events per firehose request", "events"),
    Metric("webhooks", "cpu_worker_s", "CPU workers (forward phase)", "s"),
    Metric("webhooks", "cpu_postgres_s", "CPU PostgreSQL (forward phase)", "s"),
    Metric("webhooks", "pg_active_s", "bench db: statement time (fwd phase)", "s"),
    Metric("webhooks", "pg_sessions", "bench db: connections opened (fwd)", "sessions"),
    Metric("webhooks", "web_rss_mb", "peak RSS web", "MB"),
    Metric("webhooks", "worker_rss_mb", "peak RSS worker", "MB"),
    Metric("backfill", "users_per_s", "extract synced", "users/s", vs_limit=True),
    Metric("backfill", "worker_rss_at_10k_mb", "peak RSS worker at 10k lines", "MB"),
    Metric("backfill", "worker_rss_mb", "peak RSS worker", "MB"),
    Metric("backfill", "web_rss_mb", "peak RSS web", "MB"),
)

TARGETS = (
    Target("outgoing-new", "users_per_s", ">=", 2000, "≥ 2,000"),
    Target("outgoing-new", "vs_limit", ">=", 0.40, "≥ 0.40"),
    Target("outgoing-new", "cio_requests_per_1k", "<=", 12, "≤ 12"),
    Target("outgoing-new", "firehose_requests_per_1k", "<=", 12, "≤ 12"),
    Target("outgoing-unchanged", "users_per_s", ">=", 10000, "≥ 10,000"),
    Target("outgoing-unchanged", "cio_requests", "==", 0, "= 0"),
    Target("ingest", "p99_ms", "<=", 50, "≤ 50"),
    Target("webhooks", "accepted_per_s", ">=", 1000, "≥ 1,000"),
    Target("webhooks", "p99_ms", "<=", 50, "≤ 50"),
    Target("backfill", "worker_rss_mb", "<=", 200, "≤ 200"),
)


def percentile(values, fraction):
    """The ``fraction`` (0..1) percentile with linear interpolation between closest ranks; None if empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(values):
    """``{median, min, max, runs}`` of the measured values (None entries are failed runs)."""
    measured = [value for value in values if value is not None]
    if not measured:
        return {"median": None, "min": None, "max": None, "runs": 0}
    return {"median": statistics.median(measured), "min": min(measured), "max": max(measured),
            "runs": len(measured)}


def rate(count, seconds):
    """Items per second, None when the duration is unknown."""
    if seconds is None or seconds <= 0:
        return None
    return count / seconds


def per_thousand(count, users):
    return None if not users else count * 1000.0 / users


def format_number(value):
    """Compact human formatting: thousands separators for large values, two decimals for small ones."""
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 100 or isinstance(value, int):
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def summary_rows(runs_by_scenario, limit_rate=None):
    """Table rows (dicts) from ``{scenario: {metric key: [value per run]}}`` in METRICS order.

    ``limit_rate`` (users/s of the limit scenario) adds the ``÷ limit`` column for rate metrics.
    """
    targets = {(target.scenario, target.key): target for target in TARGETS}
    rows = []
    for metric in METRICS:
        values = runs_by_scenario.get(metric.scenario, {}).get(metric.key)
        if values is None:
            continue
        summary = summarize(values)
        target = targets.get((metric.scenario, metric.key))
        verdict = target.check(summary["median"]) if target else None
        ratio = None
        if metric.vs_limit and limit_rate and summary["median"] is not None:
            ratio = summary["median"] / limit_rate
        rows.append({
            "scenario": metric.scenario, "metric": metric.key, "label": metric.label, "unit": metric.unit,
            **summary, "target": target.label if target else "",
            "result": "" if target is None else ("MISS" if not verdict else "PASS"),
            "vs_limit": ratio,
        })
    return rows


COLUMNS = (("scenario", "scenario"), ("label", "figure"), ("median", "median"), ("min", "min"),
           ("max", "max"), ("unit", "unit"), ("target", "target"), ("result", ""), ("vs_limit", "÷ limit"))
NUMERIC = frozenset({"median", "min", "max", "vs_limit"})


def format_table(rows):
    """A plain-text table of summary rows, numbers right-aligned."""
    cells = [[title for _, title in COLUMNS]]
    for row in rows:
        cells.append([format_number(row.get(key)) if key in NUMERIC else str(row.get(key) or "")
                      for key, _ in COLUMNS])
    widths = [max(len(line[index]) for line in cells) for index in range(len(COLUMNS))]
    lines = []
    for number, line in enumerate(cells):
        parts = [text.rjust(width) if key in NUMERIC else text.ljust(width)
                 for (key, _), text, width in zip(COLUMNS, line, widths)]
        lines.append("  ".join(parts).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def format_markdown(rows):
    """The same table as GitHub markdown (for docs/performance.md)."""
    header = "| " + " | ".join(title or "result" for _, title in COLUMNS) + " |"
    rule = "|" + "|".join("---:" if key in NUMERIC else "---" for key, _ in COLUMNS) + "|"
    body = ["| " + " | ".join(format_number(row.get(key)) if key in NUMERIC else str(row.get(key) or "")
                              for key, _ in COLUMNS) + " |" for row in rows]
    return "\n".join([header, rule, *body])
