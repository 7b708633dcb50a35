"""The benchmark harness's pure parts: statistics, targets, the table, payload shapes (no processes)."""
import json

import pytest

from tests.bench import payloads
from tests.bench.profiling import parse_collapsed
from tests.bench.stats import (
    TARGETS, Target, format_markdown, format_number, format_table, per_thousand, percentile, rate,
    summarize, summary_rows,
)


def test_summarize_gives_median_min_max_and_skips_failed_runs():
    assert summarize([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "runs": 3}
    assert summarize([4.0, None, 1.0, 2.0, 3.0]) == {"median": 2.5, "min": 1.0, "max": 4.0, "runs": 4}
    assert summarize([None]) == {"median": None, "min": None, "max": None, "runs": 0}


def test_percentile_interpolates_between_ranks():
    values = list(range(1, 101))
    assert percentile(values, 0.5) == pytest.approx(50.5)
    assert percentile(values, 0.99) == pytest.approx(99.01)
    assert percentile([7], 0.99) == 7
    assert percentile([], 0.5) is None


def test_rates_guard_against_missing_durations():
    assert rate(1000, 2.0) == 500
    assert rate(1000, 0) is None
    assert per_thousand(25, 2000) == 12.5
    assert per_thousand(3, 0) is None


@pytest.mark.parametrize(("value", "text"), [
    (None, "—"), (20000.4, "20,000"), (123.6, "124"), (42.25, "42.2"), (0, "0"), (12.0, "12.0"), (0.4567, "0.46"),
    (3, "3"), (0.0, "0.00"),
])
def test_format_number(value, text):
    assert format_number(value) == text


def test_targets_check_each_operator():
    assert Target("s", "k", ">=", 10, "").check(10) is True
    assert Target("s", "k", "<=", 10, "").check(10.5) is False
    assert Target("s", "k", "==", 0, "").check(0) is True
    assert Target("s", "k", ">=", 10, "").check(None) is None
    assert {(t.scenario, t.key) for t in TARGETS} >= {("outgoing-new", "users_per_s"), ("ingest", "p99_ms"),
                                                      ("backfill", "worker_rss_mb"), ("outgoing-new", "vs_limit")}


def test_summary_rows_mark_pass_miss_and_ratio_to_limit():
    runs = {"limit": {"users_per_s": [4000.0, 5000.0, 6000.0]},
            "outgoing-new": {"users_per_s": [2500.0, 1500.0, 2100.0], "cio_requests_per_1k": [13.0, 13.0, 14.0]}}
    rows = {(row["scenario"], row["metric"]): row for row in summary_rows(runs, limit_rate=5000.0)}
    new = rows[("outgoing-new", "users_per_s")]
    assert (new["median"], new["min"], new["max"], new["result"]) == (2100.0, 1500.0, 2500.0, "PASS")
    assert new["vs_limit"] == pytest.approx(0.42)
    assert rows[("outgoing-new", "cio_requests_per_1k")]["result"] == "MISS"
    assert rows[("limit", "users_per_s")]["result"] == ""
    assert ("ingest", "p99_ms") not in rows


def test_table_has_one_line_per_row_with_aligned_columns():
    runs = {"ingest": {"p99_ms": [40.0, 60.0, 45.0], "p50_ms": [10.0, 12.0, 11.0]}}
    rows = summary_rows(runs)
    table = format_table(rows).splitlines()
    assert len(table) == 2 + len(rows)
    assert table[0].split()[:3] == ["scenario", "figure", "median"]
    assert set(table[1].replace(" ", "")) == {"-"}
    p99 = next(line for line in table if "p99" in line)
    assert p99.split()[3:6] == ["45.0", "40.0", "60.0"] and "PASS" in p99 and "≤ 50" in p99
    assert len({len(line.rstrip()) for line in table[:2]}) == 1
    markdown = format_markdown(rows).splitlines()
    assert markdown[0].startswith("| scenario |") and markdown[1].startswith("|---|")
    assert len(markdown) == 2 + len(rows)


def test_user_messages_look_like_hull_users():
    message = payloads.user_message(7)
    user = message["user"]
    traits = {name for name in user if name in payloads.SYNCHRONIZED_ATTRIBUTES}
    assert len(traits) == len(payloads.ATTRIBUTES) == 20
    kinds = {type(user[name]) for name in traits}
    assert {str, int, float, bool} <= kinds
    dates = [name for name in traits if name.endswith("_at")]
    assert dates and all(user[name].endswith("Z") for name in dates)
    assert {"id", "email", "external_id", "indexed_at", "segment_ids", "created_at"} <= set(user)
    assert payloads.WHITELISTED_SEGMENT in user["segment_ids"]
    assert [s["id"] for s in message["segments"]] == user["segment_ids"]


def test_every_user_is_whitelisted_and_has_zero_to_three_whitelisted_events():
    counts = set()
    for number in range(60):
        message = payloads.user_message(number)
        assert payloads.WHITELISTED_SEGMENT in message["user"]["segment_ids"]
        assert 1 <= len(message["user"]["segment_ids"]) <= len(payloads.SEGMENTS)
        assert all(event["event"] in payloads.EVENT_NAMES for event in message["events"])
        counts.add(len(message["events"]))
    assert counts == {0, 1, 2, 3}


def test_unchanged_pass_rebuilds_the_same_attributes_later_and_without_events():
    first, again = payloads.user_message(11), payloads.user_message(11, indexed_minutes=1, with_events=False)
    assert again["events"] == []
    assert again["user"]["indexed_at"] > first["user"]["indexed_at"]
    strip = {"indexed_at"}
    assert {k: v for k, v in first["user"].items() if k not in strip} == \
        {k: v for k, v in again["user"].items() if k not in strip}


def test_notification_bodies_hold_100_messages_each():
    stub = payloads.connector_stub("5be1c4000000000000000001", "http://127.0.0.1:1", "s3cret")
    bodies, events = payloads.notification_bodies(stub, 250, "t")
    decoded = [json.loads(body) for body in bodies]
    assert [len(body["messages"]) for body in decoded] == [100, 100, 50]
    assert [body["notification_id"] for body in decoded] == ["t-0", "t-1", "t-2"]
    assert decoded[0]["configuration"] == {"id": "5be1c4000000000000000001", "organization": "http://127.0.0.1:1",
                                           "secret": "s3cret"}
    assert decoded[0]["channel"] == "user:update"
    assert events == sum(len(message["events"]) for body in decoded for message in body["messages"])
    ids = [message["user"]["id"] for body in decoded for message in body["messages"]]
    assert len(set(ids)) == 250


def test_signed_webhooks_verify_like_customerio():
    from webhooks.security import customerio_signature_valid

    deliveries = payloads.signed_webhooks("key", 3, known_users=2, prefix="A1x", timestamp=1700000000)
    assert len(deliveries) == 3
    body, headers = deliveries[2]
    payload = json.loads(body)
    assert (payload["object_type"], payload["metric"]) == ("email", "opened")
    assert payload["data"]["identifiers"]["id"] == f"ext-{payloads.user_id(0)}"
    assert customerio_signature_valid("key", headers["X-CIO-Timestamp"], body, headers["X-CIO-Signature"])
    assert len({json.loads(b)["event_id"] for b, _ in deliveries}) == 3


def test_collapsed_profiles_count_self_and_inclusive_time_once_per_stack():
    lines = [
        "process 1;main (/w/app.py:1);save (/venv/site-packages/django/db/q.py:9);copy (/py/lib/python3.11/copy.py:3) 6",
        "process 1;main (/w/app.py:1);save (/venv/site-packages/django/db/q.py:9) 3",
        "process 1;main (/w/app.py:1);main (/w/app.py:5) 1",
        "garbage",
    ]
    own, inclusive, total = parse_collapsed(lines)
    assert total == 10
    assert own["copy (copy.py)"] == 6 and own["save (django/db/q.py)"] == 3
    assert inclusive["main (/w/app.py)"] == 10 and inclusive["save (django/db/q.py)"] == 9
