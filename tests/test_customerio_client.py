"""Tests for sync.customerio (and the retry plumbing of sync.http it relies on).

Two layers: mocked HTTP with `responses` for exact request/response control, and the loopback
FakeCustomerIO for the real limits (401, 400 on oversize, 207 per-item errors, 429).
"""
import base64
import email.utils
import json
import logging
import time
import types
import uuid

import pytest
import requests
import responses

import sync.http
from sync.customerio import (
    MAX_OPERATION_BYTES, MAX_OPERATIONS_PER_REQUEST, MAX_REQUEST_BYTES, CustomerIOClient, OperationResult,
    pack_operations,
)
from sync.exceptions import CredentialsRejected, PermanentAPIError, RetryableAPIError, SyncError
from sync.http import MAX_RETRY_AFTER, backoff_delay, retry_after_seconds
from tests.fakes.customerio import FakeCustomerIO

BASE = "https://track.example.test"
BATCH_URL = f"{BASE}/api/v2/batch"
EVENTS_URL = f"{BASE}/api/v1/events"
REGION_URL = f"{BASE}/api/v1/accounts/region"
SITE_ID = "site-0f3a9c"
API_KEY = "apikey-TOPSECRET-7d1e55aa"
BASIC_TOKEN = base64.b64encode(f"{SITE_ID}:{API_KEY}".encode()).decode()


def make_client(base_url=BASE, site_id=SITE_ID, api_key=API_KEY, rate=1000):
    # A unique pace key per client keeps tests from sharing (Redis) pacing state.
    return CustomerIOClient(base_url, site_id, api_key, rate, pace_key=f"test-{uuid.uuid4().hex}")


def identify(identifier, **attributes):
    return {"type": "person", "action": "identify", "identifiers": {"id": identifier}, "attributes": attributes}


def event(identifier, name="Signed Up", **attributes):
    return {"type": "person", "action": "event", "identifiers": {"id": identifier}, "name": name,
            "attributes": attributes}


def encoded_size(op):
    return len(json.dumps(op, separators=(",", ":"), ensure_ascii=False).encode())


def event_of_size(identifier, size):
    """An event operation whose compact JSON encoding is exactly `size` bytes."""
    op = event(identifier, blob="")
    op["attributes"]["blob"] = "x" * (size - encoded_size(op))
    assert encoded_size(op) == size
    return op


def batch_of(request):
    return json.loads(request.body)["batch"]


@pytest.fixture
def sleeps(monkeypatch):
    """Record the backoff sleeps of sync.http instead of sleeping."""
    recorded = []
    monkeypatch.setattr(sync.http, "time", types.SimpleNamespace(sleep=recorded.append, time=time.time,
                                                                 monotonic=time.monotonic))
    return recorded


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


# --- pack_operations -----------------------------------------------------------------------

def test_pack_operations_keeps_order_and_leaves_out_oversize_operations():
    encoded = [b"a" * 10, b"b" * (MAX_OPERATION_BYTES + 1), b"c" * 10]
    assert pack_operations(encoded) == [[0, 2]]


def test_pack_operations_splits_under_the_request_byte_limit():
    encoded = [b"x" * 30_000] * 40
    chunks = pack_operations(encoded)
    assert [i for chunk in chunks for i in chunk] == list(range(40))
    for chunk in chunks:
        body_size = len(b'{"batch":[]}') + sum(len(encoded[i]) for i in chunk) + len(chunk) - 1
        assert body_size <= MAX_REQUEST_BYTES


def test_pack_operations_splits_at_the_operation_count_limit():
    chunks = pack_operations([b"{}"] * (MAX_OPERATIONS_PER_REQUEST * 2 + 1))
    assert [len(chunk) for chunk in chunks] == [MAX_OPERATIONS_PER_REQUEST, MAX_OPERATIONS_PER_REQUEST, 1]


def test_pack_operations_of_nothing_is_no_request():
    assert pack_operations([]) == []


# --- batch with mocked HTTP ----------------------------------------------------------------

def test_batch_200_sends_one_request_with_basic_auth_and_all_ok(mocked):
    mocked.add(responses.POST, BATCH_URL, json={}, status=200)
    ops = [identify("u1", email="u1@example.com"), event("u1")]

    results = make_client().batch(ops)

    assert [r.ok for r in results] == [True, True]
    assert all(r.status == 200 and not r.retryable and r.error == "" for r in results)
    assert all(isinstance(r.duration_ms, int) for r in results)
    assert len(mocked.calls) == 1
    request = mocked.calls[0].request
    assert request.headers["Authorization"] == f"Basic {BASIC_TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert batch_of(request) == ops


def test_batch_of_nothing_sends_nothing(mocked):
    assert make_client().batch([]) == []
    assert len(mocked.calls) == 0


def test_batch_207_item_errors_map_to_their_operations(mocked):
    mocked.add(responses.POST, BATCH_URL, status=207, json={"errors": [
        {"batch_index": 1, "reason": "invalid", "field": "identifiers", "message": "bad identifiers"},
        {"batch_index": 3, "reason": "too_large", "field": "attributes.x", "message": "value too long"},
    ]})
    ops = [identify(f"u{i}") for i in range(5)]

    results = make_client().batch(ops)

    assert [r.ok for r in results] == [True, False, True, False, True]
    assert "bad identifiers" in results[1].error and "invalid" in results[1].error
    assert "value too long" in results[3].error
    assert all(not r.retryable for r in results)
    assert results[1].status == 207


def test_batch_errors_in_a_200_body_are_item_failures_too(mocked):
    # Customer.io staff parse `errors` from 200 bodies as well (reference/customerio-api.md §2).
    mocked.add(responses.POST, BATCH_URL, status=200,
               json={"errors": [{"batch_index": 0, "reason": "invalid", "message": "nope"}]})
    results = make_client().batch([identify("a"), identify("b")])
    assert [r.ok for r in results] == [False, True]
    assert "nope" in results[0].error


def test_batch_index_is_relative_to_each_request(mocked):
    """Two requests; each answers 207 for its own operations marked `fail`."""

    def answer(request):
        batch = batch_of(request)
        errors = [{"batch_index": i, "reason": "invalid", "message": f"refused {op['identifiers']['id']}"}
                  for i, op in enumerate(batch) if op["attributes"].get("fail")]
        return (207, {}, json.dumps({"errors": errors})) if errors else (200, {}, "{}")

    mocked.add_callback(responses.POST, BATCH_URL, callback=answer)
    ops = []
    for i in range(30):
        op = event_of_size(f"u{i}", 30_000)
        op["action"], op["attributes"]["fail"] = "identify", i in (2, 19, 25)
        op.pop("name")
        ops.append(op)

    results = make_client().batch(ops)

    assert len(mocked.calls) >= 2
    first_request_size = len(batch_of(mocked.calls[0].request))
    assert first_request_size < 19  # the failures at 19 and 25 are in a later request
    for i, result in enumerate(results):
        if i in (2, 19, 25):
            assert not result.ok and result.error.endswith(f"refused u{i}"), (i, result)
        else:
            assert result.ok, (i, result)


def test_batch_item_errors_without_a_usable_index_are_ignored(mocked):
    mocked.add(responses.POST, BATCH_URL, status=207,
               json={"errors": [{"batch_index": "0", "message": "string index"}, "garbage", {"message": "no index"}]})
    results = make_client().batch([identify("a")])
    assert results[0].ok


def test_batch_400_fails_the_whole_request_without_retry(mocked):
    mocked.add(responses.POST, BATCH_URL, status=400,
               json={"errors": [{"reason": "invalid", "field": "batch", "message": "body must have a batch"}]})

    results = make_client().batch([identify("a"), identify("b")])

    assert len(mocked.calls) == 1
    for result in results:
        assert not result.ok and not result.retryable and result.status == 400
        assert "400" in result.error and "body must have a batch" in result.error


def test_batch_400_with_a_non_json_body_still_explains(mocked):
    mocked.add(responses.POST, BATCH_URL, status=400, body="<html>Bad Request</html>")
    results = make_client().batch([identify("a")])
    assert not results[0].ok and not results[0].retryable and "400" in results[0].error


def test_batch_400_with_a_json_body_that_is_not_an_object_still_fails_cleanly(mocked):
    mocked.add(responses.POST, BATCH_URL, status=400, json=["Bad Request"])
    results = make_client().batch([identify("a")])
    assert not results[0].ok and not results[0].retryable and "400" in results[0].error


def test_batch_401_raises_credentials_rejected_without_retry(mocked):
    mocked.add(responses.POST, BATCH_URL, status=401, json={"meta": {"error": "Unauthorized request"}})

    with pytest.raises(CredentialsRejected) as caught:
        make_client().batch([identify("a")])

    assert caught.value.status == 401
    assert len(mocked.calls) == 1


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_batch_retries_retryable_statuses_then_gives_up_retryable(mocked, monkeypatch, sleeps, status):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "3")
    mocked.add(responses.POST, BATCH_URL, status=status, json={"error": "busy"})

    results = make_client().batch([identify("a"), identify("b")])

    assert len(mocked.calls) == 3
    assert len(sleeps) == 2
    for result in results:
        assert not result.ok and result.retryable and result.status == status


def test_batch_retries_connection_errors(mocked, monkeypatch, sleeps):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "3")
    mocked.add(responses.POST, BATCH_URL, body=requests.ConnectionError("connection refused"))

    results = make_client().batch([identify("a")])

    assert len(mocked.calls) == 3
    assert not results[0].ok and results[0].retryable and "ConnectionError" in results[0].error


def test_batch_retries_timeouts(mocked, monkeypatch, sleeps):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "2")
    mocked.add(responses.POST, BATCH_URL, body=requests.ReadTimeout("slow"))
    results = make_client().batch([identify("a")])
    assert len(mocked.calls) == 2
    assert results[0].retryable


def test_batch_recovers_after_transient_errors(mocked, monkeypatch, sleeps):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "4")
    mocked.add(responses.POST, BATCH_URL, status=429)
    mocked.add(responses.POST, BATCH_URL, status=503)
    mocked.add(responses.POST, BATCH_URL, body=requests.ConnectionError("reset"))
    mocked.add(responses.POST, BATCH_URL, status=200, json={})

    results = make_client().batch([identify("a")])

    assert len(mocked.calls) == 4
    assert results[0].ok and results[0].status == 200
    assert len(sleeps) == 3


def test_backoff_without_retry_after_is_jittered_exponential_within_the_cap(mocked, monkeypatch, sleeps):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("HTTP_BACKOFF_BASE", "0.5")
    monkeypatch.setenv("HTTP_BACKOFF_MAX", "3")
    mocked.add(responses.POST, BATCH_URL, status=500)

    make_client().batch([identify("a")])

    assert len(sleeps) == 4
    for attempt, delay in enumerate(sleeps):
        assert 0 <= delay <= min(3.0, 0.5 * 2 ** attempt)


def test_later_chunks_are_not_sent_once_a_chunk_runs_out_of_retries(mocked, monkeypatch, sleeps):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "2")
    mocked.add(responses.POST, BATCH_URL, status=503)
    ops = [event_of_size(f"u{i}", 30_000) for i in range(40)]
    assert len(pack_operations([json.dumps(op, separators=(",", ":")).encode() for op in ops])) >= 3

    results = make_client().batch(ops)

    assert len(mocked.calls) == 2  # both attempts of the first chunk, nothing after
    first = {op["identifiers"]["id"] for op in batch_of(mocked.calls[0].request)}
    assert all(not r.ok and r.retryable for r in results)
    unsent = [r for op, r in zip(ops, results) if op["identifiers"]["id"] not in first]
    assert unsent and all(r.status is None for r in unsent)


def test_later_chunks_after_a_400_chunk_are_still_sent(mocked):
    mocked.add(responses.POST, BATCH_URL, status=400, json={"errors": [{"message": "bad"}]})
    mocked.add(responses.POST, BATCH_URL, status=200, json={})
    ops = [event_of_size(f"u{i}", 30_000) for i in range(20)]

    results = make_client().batch(ops)

    assert len(mocked.calls) == 2
    first_size = len(batch_of(mocked.calls[0].request))
    assert all(not r.ok and not r.retryable for r in results[:first_size])
    assert all(r.ok for r in results[first_size:])


def test_retry_after_seconds_is_honoured(mocked, monkeypatch, sleeps):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "3")
    mocked.add(responses.POST, BATCH_URL, status=429, headers={"Retry-After": "7"})
    mocked.add(responses.POST, BATCH_URL, status=503, headers={"Retry-After": "0.25"})
    mocked.add(responses.POST, BATCH_URL, status=200, json={})

    results = make_client().batch([identify("a")])

    assert results[0].ok
    assert sleeps == [7.0, 0.25]


def test_retry_after_http_date_is_honoured(mocked, monkeypatch, sleeps):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "2")
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    mocked.add(responses.POST, BATCH_URL, status=429, headers={"Retry-After": when})
    mocked.add(responses.POST, BATCH_URL, status=200, json={})

    make_client().batch([identify("a")])

    assert len(sleeps) == 1 and 17 <= sleeps[0] <= 20


def test_retry_after_is_capped(mocked, monkeypatch, sleeps):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "2")
    mocked.add(responses.POST, BATCH_URL, status=429, headers={"Retry-After": "86400"})
    mocked.add(responses.POST, BATCH_URL, status=200, json={})
    make_client().batch([identify("a")])
    assert sleeps == [MAX_RETRY_AFTER]


@pytest.mark.parametrize("header, expected", [
    ("3", 3.0), ("0", 0.0), ("-5", 0.0), ("1.5", 1.5), ("999", MAX_RETRY_AFTER), (None, None), ("", None),
])
def test_retry_after_seconds_parsing(header, expected):
    response = requests.Response()
    if header is not None:
        response.headers["Retry-After"] = header
    assert retry_after_seconds(response) == expected


def test_retry_after_in_the_past_means_no_wait():
    response = requests.Response()
    response.headers["Retry-After"] = email.utils.formatdate(time.time() - 3600, usegmt=True)
    assert retry_after_seconds(response) == 0.0


def test_retry_after_of_no_response_is_none():
    assert retry_after_seconds(None) is None


def test_backoff_delay_prefers_retry_after(monkeypatch):
    response = requests.Response()
    response.headers["Retry-After"] = "2"
    assert backoff_delay(5, response) == 2.0
    monkeypatch.setenv("HTTP_BACKOFF_BASE", "1")
    monkeypatch.setenv("HTTP_BACKOFF_MAX", "4")
    assert all(0 <= backoff_delay(10) <= 4 for _ in range(50))


def test_oversize_operation_fails_alone_and_the_rest_is_sent(mocked):
    mocked.add(responses.POST, BATCH_URL, status=200, json={})
    big = event("big", blob="x" * (MAX_OPERATION_BYTES + 100))
    ops = [identify("a"), big, identify("b")]

    results = make_client().batch(ops)

    assert results[0].ok and results[2].ok
    assert not results[1].ok and not results[1].retryable
    assert str(MAX_OPERATION_BYTES) in results[1].error and "bytes" in results[1].error
    assert len(mocked.calls) == 1
    assert batch_of(mocked.calls[0].request) == [ops[0], ops[2]]


def test_only_oversize_operations_means_no_request(mocked):
    results = make_client().batch([event("big", blob="x" * (MAX_OPERATION_BYTES + 1))])
    assert not results[0].ok
    assert len(mocked.calls) == 0


def test_operation_of_exactly_32kb_is_sent(mocked):
    mocked.add(responses.POST, BATCH_URL, status=200, json={})
    results = make_client().batch([event_of_size("edge", MAX_OPERATION_BYTES)])
    assert results[0].ok and len(mocked.calls) == 1


def test_operations_are_split_into_requests_under_500kb_and_all_delivered(mocked):
    bodies = []

    def answer(request):
        bodies.append(request.body)
        return 200, {}, "{}"

    mocked.add_callback(responses.POST, BATCH_URL, callback=answer)
    ops = [event_of_size(f"u{i}", 1_000 + (i * 977) % 31_000) for i in range(80)]
    ops.append(identify("unicode", name="Zoë ✓ " * 2000))

    results = make_client().batch(ops)

    assert all(r.ok for r in results)
    assert len(bodies) >= 2
    assert all(len(body) <= 500 * 1024 for body in bodies)
    delivered = [op for body in bodies for op in json.loads(body)["batch"]]
    assert delivered == ops


def test_non_ascii_operations_are_measured_in_utf8_bytes(mocked):
    mocked.add(responses.POST, BATCH_URL, status=200, json={})
    # 11,000 × "€" is 33,000 bytes in UTF-8 but only 11,000 characters.
    results = make_client().batch([event("a", blob="€" * 11_000), identify("b")])
    assert not results[0].ok and results[1].ok


def test_requests_are_paced_through_the_shared_limiter(mocked, monkeypatch):
    calls = []

    class Recorder:
        def acquire(self, key, rate):
            calls.append((key, rate))

    monkeypatch.setattr("sync.customerio.rate_limiter", lambda: Recorder())
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "3")
    mocked.add(responses.POST, BATCH_URL, status=429)
    mocked.add(responses.POST, BATCH_URL, status=200, json={})

    CustomerIOClient(BASE, SITE_ID, API_KEY, 42, pace_key="workspace-1").batch([identify("a")])

    assert calls == [("workspace-1", 42), ("workspace-1", 42)]  # before every attempt


def test_pace_key_defaults_to_the_site_id(mocked, monkeypatch):
    keys = []
    monkeypatch.setattr("sync.customerio.rate_limiter",
                        lambda: types.SimpleNamespace(acquire=lambda key, rate: keys.append(key)))
    mocked.add(responses.POST, BATCH_URL, status=200, json={})
    CustomerIOClient(BASE + "/", SITE_ID, API_KEY, 0).batch([identify("a")])
    assert keys == [SITE_ID]
    assert mocked.calls[0].request.url == BATCH_URL  # trailing slash of the base URL dropped


# --- anonymous_event and region with mocked HTTP ------------------------------------------

def test_anonymous_event_posts_v1_events(mocked):
    mocked.add(responses.POST, EVENTS_URL, status=200, json={})
    body = {"name": "page", "anonymous_id": "anon-1", "data": {"url": "https://e.com"}, "type": "page"}

    result = make_client().anonymous_event(body)

    assert result.ok and result.status == 200
    assert json.loads(mocked.calls[0].request.body) == body
    assert mocked.calls[0].request.headers["Authorization"] == f"Basic {BASIC_TOKEN}"


def test_anonymous_event_400_is_a_permanent_failure(mocked):
    mocked.add(responses.POST, EVENTS_URL, status=400, json={"meta": {"errors": ["name is required"]}})
    result = make_client().anonymous_event({"anonymous_id": "x"})
    assert not result.ok and not result.retryable and "name is required" in result.error
    assert len(mocked.calls) == 1


def test_anonymous_event_5xx_is_retryable(mocked, monkeypatch, sleeps):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "2")
    mocked.add(responses.POST, EVENTS_URL, status=502)
    result = make_client().anonymous_event({"name": "x", "anonymous_id": "a"})
    assert not result.ok and result.retryable and result.status == 502
    assert len(mocked.calls) == 2


def test_anonymous_event_401_raises(mocked):
    mocked.add(responses.POST, EVENTS_URL, status=401)
    with pytest.raises(CredentialsRejected):
        make_client().anonymous_event({"name": "x", "anonymous_id": "a"})


def test_region_returns_the_workspace_region(mocked):
    payload = {"url": "https://track-eu.customer.io", "region": "eu", "environment_id": 12}
    mocked.add(responses.GET, REGION_URL, status=200, json=payload)
    assert make_client().region() == payload
    assert mocked.calls[0].request.headers["Authorization"] == f"Basic {BASIC_TOKEN}"


def test_region_200_that_is_not_json_raises_a_sync_error(mocked):
    # Callers (the status check) handle SyncError; a proxy's HTML page must not escape as ValueError.
    mocked.add(responses.GET, REGION_URL, status=200, body="<html>Sign in</html>", content_type="text/html")
    with pytest.raises(SyncError):
        make_client().region()


def test_region_401_raises_credentials_rejected(mocked):
    mocked.add(responses.GET, REGION_URL, status=401, json={"meta": {"error": "Unauthorized request"}})
    with pytest.raises(CredentialsRejected):
        make_client().region()


def test_region_other_4xx_raises_permanent_error(mocked):
    mocked.add(responses.GET, REGION_URL, status=404, json={"meta": {"error": "not found"}})
    with pytest.raises(PermanentAPIError) as caught:
        make_client().region()
    assert caught.value.status == 404 and not isinstance(caught.value, CredentialsRejected)


def test_region_5xx_raises_retryable_after_retries(mocked, monkeypatch, sleeps):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "2")
    mocked.add(responses.GET, REGION_URL, status=500, body="Internal Server Error")
    with pytest.raises(RetryableAPIError) as caught:
        make_client().region()
    assert caught.value.status == 500 and caught.value.retryable
    assert len(mocked.calls) == 2


# --- no credentials in errors or logs -----------------------------------------------------

def _assert_no_credentials(*texts):
    for text in texts:
        assert API_KEY not in text
        assert BASIC_TOKEN not in text


def test_no_credentials_in_exceptions_results_or_logs(mocked, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "2")
    client = make_client()
    seen = []

    mocked.add(responses.POST, BATCH_URL, status=500, json={"error": "boom"})
    seen += [r.error for r in client.batch([identify("a")])]
    mocked.replace(responses.POST, BATCH_URL, body=requests.ConnectionError("refused"))
    seen += [r.error for r in client.batch([identify("a")])]
    mocked.replace(responses.POST, BATCH_URL, status=400, json={"errors": [{"message": "bad"}]})
    seen += [r.error for r in client.batch([identify("a")])]
    mocked.replace(responses.POST, BATCH_URL, status=207, json={"errors": [{"batch_index": 0, "message": "x"}]})
    seen += [r.error for r in client.batch([identify("a")])]
    mocked.replace(responses.POST, BATCH_URL, status=401)
    with pytest.raises(CredentialsRejected) as rejected:
        client.batch([identify("a")])
    mocked.add(responses.GET, REGION_URL, status=503)
    with pytest.raises(RetryableAPIError) as unavailable:
        client.region()

    errors = [rejected.value, unavailable.value]
    _assert_no_credentials(caplog.text, *seen, *(str(e) for e in errors), *(repr(e) for e in errors),
                           *(str(record.args) for record in caplog.records))
    assert any("retrying" in record.getMessage() for record in caplog.records)


# --- against the loopback FakeCustomerIO --------------------------------------------------

FAKE_SITE, FAKE_KEY = "fake-site", "fake-key-SECRET-0042"


@pytest.fixture
def cio():
    with FakeCustomerIO(site_id=FAKE_SITE, api_key=FAKE_KEY) as fake:
        yield fake


def fake_client(cio, api_key=FAKE_KEY):
    return make_client(base_url=cio.url, site_id=FAKE_SITE, api_key=api_key)


def test_fake_200_creates_people_and_events(cio):
    ops = [identify("u1", email="u1@example.com", plan="pro"), event("u1", "Signed Up", source="ads"),
           identify("u2", email="u2@example.com")]

    results = fake_client(cio).batch(ops)

    assert all(r.ok and r.status == 200 for r in results)
    assert cio.person(id="u1")["attributes"]["plan"] == "pro"
    assert cio.person(id="u2")["email"] == "u2@example.com"
    assert [e["name"] for e in cio.events(person_id="u1")] == ["Signed Up"]
    assert cio.stats()["by_route"] == {"POST /api/v2/batch": 1}


def test_fake_207_fails_only_the_invalid_operations(cio):
    ops = [identify("u1"), {"type": "person", "action": "event", "identifiers": {"id": "u1"}},
           identify("u2"), {"type": "person", "action": "identify", "identifiers": {}}]

    results = fake_client(cio).batch(ops)

    assert [r.ok for r in results] == [True, False, True, False]
    assert "event name is required" in results[1].error
    assert "identifiers" in results[3].error
    assert {p["id"] for p in cio.people()} == {"u1", "u2"}


def test_fake_207_indexes_map_across_several_requests(cio):
    ops = []
    for i in range(30):
        op = event_of_size(f"u{i}", 30_000)
        if i in (4, 17, 29):
            op["name"] = ""  # refused by Customer.io: an event needs a name
        ops.append(op)

    results = fake_client(cio).batch(ops)

    assert cio.stats()["by_route"]["POST /api/v2/batch"] >= 2
    assert [i for i, r in enumerate(results) if not r.ok] == [4, 17, 29]
    assert len(cio.events()) == 27


def test_fake_401_raises_credentials_rejected_without_the_key(cio, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CredentialsRejected) as caught:
        fake_client(cio, api_key="wrong-key-SECRET").batch([identify("u1")])
    assert "wrong-key-SECRET" not in str(caught.value) and "wrong-key-SECRET" not in caplog.text
    assert cio.people() == []
    assert cio.stats()["requests"] == 1


def test_fake_429_then_success(cio, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "4")
    cio.fail(status=429, count=3)
    results = fake_client(cio).batch([identify("u1"), identify("u2")])
    assert all(r.ok for r in results)
    assert cio.stats()["by_status"] == {429: 3, 200: 1}
    assert len(cio.people()) == 2


def test_fake_retry_after_is_honoured(cio, monkeypatch, sleeps):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "2")
    cio.fail(status=429, count=1, retry_after=3)
    results = fake_client(cio).batch([identify("u1")])
    assert results[0].ok and sleeps == [3.0]


def test_fake_500_exhausted_is_retryable_and_changes_nothing(cio, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "3")
    cio.fail(status=500, count=3)
    results = fake_client(cio).batch([identify("u1")])
    assert not results[0].ok and results[0].retryable and results[0].status == 500
    assert cio.people() == [] and cio.stats()["requests"] == 3
    assert FAKE_KEY not in caplog.text


def test_fake_connection_failure_is_retryable(cio, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "2")
    cio.set_down()
    results = fake_client(cio).batch([identify("u1")])
    assert not results[0].ok and results[0].retryable
    cio.set_down(False)
    assert fake_client(cio).batch([identify("u1")])[0].ok


def test_fake_oversize_operation_fails_alone(cio):
    ops = [identify("u1"), event("u1", blob="x" * MAX_OPERATION_BYTES), event_of_size("u1", MAX_OPERATION_BYTES)]
    results = fake_client(cio).batch(ops)
    assert [r.ok for r in results] == [True, False, True]
    assert "bytes" in results[1].error
    assert len(cio.events()) == 1


def test_fake_accepts_every_request_of_a_large_split_batch(cio):
    ops = [event_of_size(f"u{i % 7}", 20_000 + (i * 131) % 12_000) for i in range(90)]

    results = fake_client(cio).batch(ops)

    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    sent = cio.requests("/api/v2/batch")
    assert len(sent) >= 4
    assert all(entry["bytes"] <= 500 * 1024 and entry["status"] == 200 for entry in sent)
    assert cio.stats()["batch_operations"] == 90
    assert len(cio.events()) == 90


def test_fake_anonymous_event(cio):
    body = {"name": "Viewed", "anonymous_id": "anon-9", "data": {"plan": "pro"}, "id": "01HZZZZZZZZZZZZZZZZZZZZZZZ"}
    assert fake_client(cio).anonymous_event(body).ok
    stored = cio.anonymous_events()
    assert [(e["anonymous_id"], e["name"], e["attributes"]) for e in stored] == [("anon-9", "Viewed", {"plan": "pro"})]


def test_fake_anonymous_event_refused_is_permanent(cio):
    result = fake_client(cio).anonymous_event({"anonymous_id": "anon-9"})
    assert not result.ok and not result.retryable and result.status == 400


def test_fake_region(cio):
    assert fake_client(cio).region() == {"url": cio.url, "region": "us", "environment_id": 1}
    with pytest.raises(CredentialsRejected):
        fake_client(cio, api_key="nope").region()


def test_operation_result_defaults():
    assert OperationResult(True) == OperationResult(ok=True, error="", retryable=False, status=None, duration_ms=None)


def test_exception_tree():
    assert issubclass(CredentialsRejected, PermanentAPIError)
    assert issubclass(RetryableAPIError, SyncError) and RetryableAPIError.retryable
    assert not PermanentAPIError.retryable
