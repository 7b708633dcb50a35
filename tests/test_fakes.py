"""Tests of the loopback fake servers themselves (no Django, no database)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
import requests

from tests.fakes.base import max_in_window
from tests.fakes.customerio import FakeCustomerIO
from tests.fakes.hull import FakeHull, synthetic_users

SITE, KEY = "site", "key"
HULL_ID, HULL_SECRET = "5a9d5c3e2f8e4b0012345601", "hull-secret-of-at-least-32-bytes!"
ORG = "abc123.hullapp.io"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cio():
    with FakeCustomerIO(site_id=SITE, api_key=KEY) as fake:
        yield fake


@pytest.fixture
def session():
    with requests.Session() as http:
        http.auth = (SITE, KEY)
        yield http


@pytest.fixture
def hull():
    with FakeHull(connectors={HULL_ID: HULL_SECRET}, organization=ORG) as fake:
        yield fake


def identify(session, cio, identifier, **attributes):
    return session.put(f"{cio.url}/api/v1/customers/{requests.utils.quote(identifier, safe='')}",
                       json=attributes, timeout=5)


def batch(session, cio, *ops):
    return session.post(f"{cio.url}/api/v2/batch", json={"batch": list(ops)}, timeout=5)


def person_op(action, identifiers, **fields):
    return {"type": "person", "action": action, "identifiers": identifiers, **fields}


# Customer.io: auth and region

def test_bad_or_missing_credentials_get_401_and_change_nothing(cio):
    url = f"{cio.url}/api/v1/customers/u1"
    assert requests.put(url, json={"a": 1}, auth=(SITE, "wrong"), timeout=5).status_code == 401
    assert requests.put(url, json={"a": 1}, timeout=5).status_code == 401
    assert requests.get(f"{cio.url}/auth", timeout=5).status_code == 401
    assert cio.people() == []
    assert requests.get(f"{cio.url}/auth", auth=(SITE, KEY), timeout=5).json() == {}


def test_rotated_credentials_replace_the_old_ones(cio, session):
    cio.set_credentials("site2", "key2")
    assert session.get(f"{cio.url}/auth", timeout=5).status_code == 401
    assert requests.get(f"{cio.url}/auth", auth=("site2", "key2"), timeout=5).status_code == 200


def test_region_endpoint_reports_fake_url(session):
    with FakeCustomerIO(SITE, KEY, region="eu") as fake:
        body = session.get(f"{fake.url}/api/v1/accounts/region", timeout=5).json()
        assert body == {"url": fake.url, "region": "eu", "environment_id": 1}


# Customer.io: identify semantics

def test_identify_creates_then_updates_and_null_removes(cio, session):
    assert identify(session, cio, "u1", email="Jane@Example.com", plan="free", score=1).status_code == 200
    assert identify(session, cio, "u1", plan="pro", score=None).status_code == 200
    person = cio.person(id="u1")
    assert person["email"] == "Jane@Example.com"
    assert person["attributes"] == {"plan": "pro"}
    assert person["created"] is True and person["updated_count"] == 1
    assert cio.person(email="jane@example.com")["cio_id"] == person["cio_id"]


def test_identify_with_update_flag_does_not_create(cio, session):
    assert identify(session, cio, "ghost", _update=True, plan="pro").status_code == 200
    assert cio.people() == []
    assert cio.stats()["skipped_updates"] == 1


def test_identify_by_email_path_then_id_change_through_cio_id(cio, session):
    identify(session, cio, "jane@example.com", plan="pro")
    person = cio.person(email="jane@example.com")
    assert person["id"] is None
    identify(session, cio, f"cio_{person['cio_id']}", id="u-9")
    assert cio.person(id="u-9")["cio_id"] == person["cio_id"]
    assert len(cio.people()) == 1


def test_identify_with_existing_body_email_updates_that_person(cio, session):
    identify(session, cio, "jane@example.com", plan="pro")
    identify(session, cio, "u1", email="JANE@example.com")
    assert len(cio.people()) == 1
    assert cio.person(id="u1")["attributes"] == {"plan": "pro"}


def test_identifier_conflict_is_an_error_without_change(cio, session):
    identify(session, cio, "u1", email="a@example.com")
    identify(session, cio, "u2", email="b@example.com")
    response = batch(session, cio, person_op("identify", {"id": "u1"}, attributes={"email": "b@example.com", "x": 1}))
    assert response.status_code == 207
    assert response.json()["errors"][0]["reason"] == "conflict"
    assert cio.person(id="u1")["email"] == "a@example.com"
    assert cio.person(id="u1")["attributes"] == {}
    v1 = identify(session, cio, "u1", id="u2")
    assert v1.status_code == 400 and v1.json()["meta"]["errors"]


def test_delete_removes_person_and_records_it(cio, session):
    identify(session, cio, "u1", plan="pro")
    assert session.delete(f"{cio.url}/api/v1/customers/u1", timeout=5).status_code == 200
    assert session.delete(f"{cio.url}/api/v1/customers/nobody", timeout=5).status_code == 200
    assert cio.people() == []
    assert [person["id"] for person in cio.deleted()] == ["u1"]


def test_merge_and_suppress_are_applied(cio, session):
    identify(session, cio, "u1", plan="pro")
    identify(session, cio, "old@example.com", plan="free", city="Paris")
    response = batch(
        session, cio,
        {"type": "person", "action": "merge", "primary": {"id": "u1"}, "secondary": {"email": "old@example.com"}},
        person_op("suppress", {"id": "u1"}),
        person_op("identify", {"id": "u1"}, attributes={"plan": "back"}),
    )
    assert response.status_code == 200
    assert cio.people() == []
    assert [person.get("merged_into") is not None for person in cio.deleted()] == [True, False]
    assert cio.deleted()[1]["attributes"] == {"plan": "pro", "city": "Paris"}
    assert ["id", "u1"] in cio.suppressed()


# Customer.io: events

def test_event_creates_unknown_person_and_is_deduplicated_by_id(cio, session):
    url = f"{cio.url}/api/v1/customers/u7/events"
    body = {"name": "purchase", "id": "01J0Z3V6F6Q2W8D9K4R2M7X1AB", "data": {"price": 3}, "timestamp": 1717003600}
    assert session.post(url, json=body, timeout=5).status_code == 200
    assert session.post(url, json=body, timeout=5).status_code == 200
    assert session.post(url, json={"name": "page-view", "type": "page"}, timeout=5).status_code == 200
    assert session.post(url, json={"name": "page-view", "type": "page"}, timeout=5).status_code == 200
    events = cio.events(person_id="u7")
    assert [(event["name"], event["type"]) for event in events] == [
        ("purchase", "event"), ("page-view", "page"), ("page-view", "page")]
    assert events[0]["attributes"] == {"price": 3} and events[0]["timestamp"] == 1717003600
    assert cio.person(id="u7")["created"] is False
    assert cio.stats()["duplicate_events"] == 1


def test_event_without_name_is_a_v1_400(cio, session):
    response = session.post(f"{cio.url}/api/v1/customers/u1/events", json={"data": {}}, timeout=5)
    assert response.status_code == 400
    assert response.json()["meta"]["errors"]
    assert cio.people() == [] and cio.events() == []


def test_anonymous_event_is_stored(cio, session):
    body = {"name": "viewed", "anonymous_id": "anon-1", "data": {"a": 1}, "id": "E1"}
    assert session.post(f"{cio.url}/api/v1/events", json=body, timeout=5).status_code == 200
    assert session.post(f"{cio.url}/api/v1/events", json=body, timeout=5).status_code == 200
    assert [event["anonymous_id"] for event in cio.anonymous_events()] == ["anon-1"]


# Customer.io: v2 batch and entity

def test_batch_partial_errors_return_207_with_indexes(cio, session):
    response = batch(
        session, cio,
        person_op("identify", {"id": "u1"}, attributes={"plan": "pro"}),
        person_op("identify", {"id": "u2", "email": "x@example.com"}, attributes={}),
        person_op("event", {"id": "u1"}, name="opened", id="E1"),
        person_op("event", {"id": "u1"}, attributes={}),
        {"type": "object", "action": "identify"},
        person_op("fly", {"id": "u1"}),
    )
    assert response.status_code == 207
    errors = response.json()["errors"]
    assert [error["batch_index"] for error in errors] == [1, 3, 4, 5]
    assert errors[0]["field"] == "identifiers"
    assert all({"reason", "field", "message"} <= set(error) for error in errors)
    assert cio.person(id="u1")["attributes"] == {"plan": "pro"}
    assert [event["name"] for event in cio.events()] == ["opened"]
    assert cio.stats()["batch_operations"] == 6


def test_batch_all_valid_is_200_empty_object(cio, session):
    response = batch(session, cio, person_op("identify", {"email": "a@example.com"}, attributes={"a": 1}),
                     person_op("delete", {"email": "A@example.com"}))
    assert (response.status_code, response.json()) == (200, {})
    assert cio.people() == [] and len(cio.deleted()) == 1


def test_batch_over_500kb_is_rejected_whole(cio, session):
    ops = [person_op("identify", {"id": f"u{n}"}, attributes={"blob": "x" * 900}) for n in range(600)]
    response = batch(session, cio, *ops)
    assert response.status_code == 400
    assert response.json()["errors"][0]["reason"] == "too_large"
    assert cio.people() == []


@pytest.mark.parametrize("op, field", [
    (person_op("identify", {"id": "u1"}, attributes={f"a{n}": "x" * 900 for n in range(40)}), ""),
    (person_op("identify", {"id": "u" * 151}), "identifiers.id"),
    (person_op("identify", {"id": "u1"}, attributes={"n" * 151: 1}), "attributes." + "n" * 151),
    (person_op("identify", {"id": "u1"}, attributes={"big": "é" * 501}), "attributes.big"),
    (person_op("identify", {"id": "u1"}, attributes={"big": {"k": "v" * 1000}}), "attributes.big"),
    (person_op("identify", {"id": "u1"}, attributes={f"a{n}": n for n in range(301)}), "attributes"),
    (person_op("event", {"id": "u1"}, name="e" * 101), "name"),
])
def test_oversize_ops_are_refused_individually(cio, session, op, field):
    response = batch(session, cio, op, person_op("identify", {"id": "ok"}))
    assert response.status_code == 207
    [error] = response.json()["errors"]
    assert (error["batch_index"], error["reason"], error["field"]) == (0, "too_large", field)
    assert [person["id"] for person in cio.people()] == ["ok"]


def test_batch_body_must_be_json_with_batch_list(cio, session):
    url = f"{cio.url}/api/v2/batch"
    assert session.post(url, data=b"{not json", timeout=5).status_code == 400
    assert session.post(url, json={"ops": []}, timeout=5).status_code == 400


def test_entity_endpoint_limits_and_errors(cio, session):
    url = f"{cio.url}/api/v2/entity"
    big = person_op("identify", {"id": "u1"}, attributes={f"a{n}": "x" * 900 for n in range(40)})
    assert session.post(url, json=big, timeout=5).status_code == 400
    bad = session.post(url, json=person_op("identify", {}), timeout=5)
    assert bad.status_code == 400 and "batch_index" not in bad.json()["errors"][0]
    assert session.post(url, json=person_op("identify", {"id": "u1"}), timeout=5).status_code == 200
    assert cio.person(id="u1") is not None


# Customer.io: rate limit

def test_rate_limit_answers_429_and_window_counts_everything(session):
    with FakeCustomerIO(SITE, KEY, rate_limit=10) as fake:
        started = time.monotonic()
        statuses = [session.get(f"{fake.url}/api/v1/accounts/region", timeout=5).status_code for _ in range(15)]
        refilled = (time.monotonic() - started) * 10
        accepted = statuses.count(200)
        assert 10 <= accepted <= 10 + refilled + 1
        assert statuses.count(429) == 15 - accepted
        assert fake.stats()["throttled"] == 15 - accepted
        assert fake.max_requests_in_window(60.0) == 15
        time.sleep(0.12)
        assert session.get(f"{fake.url}/api/v1/accounts/region", timeout=5).status_code == 200


def test_max_in_window_counts_the_busiest_window():
    assert max_in_window([], 1.0) == 0
    assert max_in_window([0.0, 0.1, 0.2, 1.5, 1.6, 2.3, 2.4], 1.0) == 4
    assert max_in_window([0.0, 1.0, 2.0], 1.0) == 1


# faults (shared base)

def test_fail_answers_status_with_retry_after_without_changing_state(cio, session):
    cio.fail(status=503, count=2, retry_after=3, path_prefix="/api/v1/customers")
    first = identify(session, cio, "u1", plan="pro")
    assert (first.status_code, first.headers["Retry-After"]) == (503, "3")
    assert session.get(f"{cio.url}/auth", timeout=5).status_code == 200
    assert identify(session, cio, "u1", plan="pro").status_code == 503
    assert cio.people() == []
    assert identify(session, cio, "u1", plan="pro").status_code == 200
    assert cio.stats()["by_status"][503] == 2


def test_fail_for_fails_everything_for_a_while(cio, session):
    deadline = time.monotonic() + 0.3
    cio.fail_for(0.3, status=502)
    assert session.get(f"{cio.url}/auth", timeout=5).status_code == 502
    assert identify(session, cio, "u1").status_code == 502
    assert cio.people() == []
    time.sleep(max(0.0, deadline - time.monotonic()) + 0.05)
    assert identify(session, cio, "u1").status_code == 200


def test_set_down_closes_connections_until_back_up(cio, session):
    assert session.get(f"{cio.url}/auth", timeout=5).status_code == 200
    cio.set_down(True)
    with pytest.raises(requests.ConnectionError):
        identify(session, cio, "u1", plan="pro")
    cio.set_down(False)
    assert identify(session, cio, "u1", plan="pro").status_code == 200
    assert [person["id"] for person in cio.people()] == ["u1"]


def test_request_log_stats_and_reset(cio, session):
    identify(session, cio, "u1")
    identify(session, cio, "u2")
    log = cio.requests(path_prefix="/api/v1/customers")
    assert [entry["path"] for entry in log] == ["/api/v1/customers/u1", "/api/v1/customers/u2"]
    assert set(log[0]) == {"method", "path", "status", "bytes", "at"} and log[0]["bytes"] == 2
    stats = cio.stats()
    assert stats["requests"] == 2
    assert stats["by_route"] == {"PUT /api/v1/customers/{identifier}": 2}
    cio.fail(count=5)
    cio.reset()
    assert cio.people() == [] and cio.requests() == [] and cio.stats()["requests"] == 0
    assert identify(session, cio, "u3").status_code == 200


def test_http_inspection_endpoints_in_thread_mode(cio, session):
    identify(session, cio, "u1", plan="pro")
    state = requests.get(f"{cio.url}/_fake/state", timeout=5).json()
    assert [person["id"] for person in state["people"]] == ["u1"]
    assert requests.get(f"{cio.url}/_fake/stats", timeout=5).json()["by_status"] == {"200": 1}
    requests.post(f"{cio.url}/_fake/fault", json={"status": 500, "count": 1}, timeout=5)
    assert identify(session, cio, "u1").status_code == 500
    requests.post(f"{cio.url}/_fake/fault", json={"down": True}, timeout=5)
    assert cio.is_down()
    requests.post(f"{cio.url}/_fake/fault", json={"down": False}, timeout=5)
    assert requests.post(f"{cio.url}/_fake/reset", timeout=5).json() == {"ok": True}
    assert cio.people() == [] and cio.stats()["requests"] == 0


def test_restart_keeps_the_port_and_chunked_bodies_are_read(session):
    fake = FakeCustomerIO(SITE, KEY).start()
    try:
        url = fake.url
        fake.stop()
        fake.start()
        assert fake.url == url
        chunks = iter([b'{"plan":', b'"pro"}'])
        assert session.put(f"{url}/api/v1/customers/u1", data=chunks, timeout=5).status_code == 200
        assert fake.person(id="u1")["attributes"] == {"plan": "pro"}
        assert "requests" not in requests.get(f"{url}/_fake/state?requests=0", timeout=5).json()
    finally:
        fake.stop()


# Hull helpers

def user_token(claims, secret=HULL_SECRET, issuer=HULL_ID, subject_type="user", iat=None):
    payload = {"iss": issuer, "iat": iat if iat is not None else int(time.time()),
               "io.hull.asUser": claims, "io.hull.subjectType": subject_type}
    return jwt.encode(payload, secret, algorithm="HS256")


def item(kind, body, token):
    return {"type": kind, "headers": {"Hull-Access-Token": token}, "body": body,
            "timestamp": "2024-01-01T00:00:00Z"}


def firehose(hull, *items, app_id=HULL_ID, secret=HULL_SECRET, **kwargs):
    headers = {"Hull-App-Id": app_id, "Hull-Access-Token": secret}
    body = kwargs.pop("body", {"batch": list(items), "timestamp": "2024-01-01T00:00:00Z",
                               "sentAt": "2024-01-01T00:00:00Z"})
    return requests.post(f"{hull.url}/", json=body, headers=headers, timeout=10, **kwargs)


def org_headers(secret=HULL_SECRET):
    return {"Hull-App-Id": HULL_ID, "Hull-Access-Token": secret, "Hull-Organization": ORG}


# Hull: firehose

def test_firehose_traits_merge_and_null_removes(hull):
    token = user_token({"email": "jane@example.com", "external_id": "e1"})
    first = firehose(hull, item("traits", {"customerio/id": "u1", "customerio/score": 3}, token))
    assert (first.status_code, first.json()) == (200, {"ok": True})
    firehose(hull, item("traits", {"customerio/score": None, "customerio/hash": "h"}, token))
    assert hull.traits("e1") == {"customerio/id": "u1", "customerio/hash": "h"}
    assert hull.user("e1")["claims"] == {"email": "jane@example.com", "external_id": "e1"}
    assert hull.stats()["firehose_items"] == 2


def test_firehose_outer_credentials_are_checked(hull):
    token = user_token({"email": "jane@example.com"})
    assert firehose(hull, item("traits", {"a": 1}, token), secret="nope").status_code == 401
    assert firehose(hull, item("traits", {"a": 1}, token), app_id="unknown").status_code == 401
    assert hull.users() == {}


@pytest.mark.parametrize("bad_token", [
    user_token({"email": "bob@example.com"}, secret="another-secret-of-at-least-32-bytes"),
    user_token({"email": "bob@example.com"}, issuer="another-connector"),
    user_token({"email": "bob@example.com"}, subject_type="account"),
    user_token({"anonymous_ids": ["x"]}),
    "not-a-jwt",
])
def test_one_invalid_item_rejects_the_whole_batch(hull, bad_token):
    good = item("traits", {"a": 1}, user_token({"email": "jane@example.com"}))
    response = firehose(hull, good, item("traits", {"b": 2}, bad_token))
    assert response.status_code == 400 and "batch[1]" in response.json()["error"]
    assert hull.users() == {}
    assert hull.stats()["rejected_batches"] == 1


def test_firehose_rejects_malformed_and_oversize_bodies(hull):
    assert firehose(hull, data=b"{oops", body=None).status_code == 400
    assert firehose(hull, body={"items": []}).status_code == 400
    assert firehose(hull, body={"batch": [{"type": "identify", "headers": {}, "body": {}}]}).status_code == 400
    oversize = firehose(hull, data=b" " * (10 * 1024 * 1024 + 1), body=None)
    assert oversize.status_code == 413
    assert hull.stats()["firehose_requests"] == 0


def test_track_is_stored_and_deduplicated_by_event_id(hull):
    token = user_token({"id": "hull-1", "email": "jane@example.com"})
    body = {"event": "Email Opened", "event_id": "ev-1", "properties": {"campaign_id": "12"},
            "created_at": "2024-01-01T00:00:00Z", "source": "customerio"}
    firehose(hull, item("track", body, token), item("track", body, token))
    firehose(hull, item("track", {"event": "Email Sent", "properties": {}}, token))
    events = hull.events(user_key="hull-1")
    assert [event["event"] for event in events] == ["Email Opened", "Email Sent"]
    assert events[0]["properties"] == {"campaign_id": "12"} and events[0]["source"] == "customerio"
    assert hull.events(event="Email Sent")[0]["event_id"] is None
    assert hull.stats()["duplicate_events"] == 1


# Hull: organization API and extracts

def test_org_api_settings_segments_and_status(hull):
    hull.set_connector_settings(HULL_ID, {"site_id": "S"})
    hull.set_segments([{"id": "seg-1", "name": "Leads"}])
    connector = requests.get(f"{hull.url}/api/v1/{HULL_ID}", headers=org_headers(), timeout=5).json()
    assert connector["id"] == HULL_ID and connector["private_settings"] == {"site_id": "S"}
    segments = requests.get(f"{hull.url}/api/v1/users_segments", params={"shipId": HULL_ID},
                            headers=org_headers(), timeout=5)
    assert segments.json() == [{"id": "seg-1", "name": "Leads"}]
    status = {"status": "warning", "messages": ["no site id"]}
    assert requests.put(f"{hull.url}/api/v1/{HULL_ID}/status", json=status,
                        headers=org_headers(), timeout=5).status_code == 200
    assert hull.statuses(HULL_ID) == [status]
    assert requests.put(f"{hull.url}/api/v1/{HULL_ID}/status", json={"status": "meh"},
                        headers=org_headers(), timeout=5).status_code == 400


def test_org_api_wrong_credentials_get_401(hull):
    url = f"{hull.url}/api/v1/{HULL_ID}"
    assert requests.get(url, headers=org_headers("bad"), timeout=5).status_code == 401
    assert requests.get(url, headers={**org_headers(), "Hull-Organization": "x.hullapp.io"},
                        timeout=5).status_code == 401
    put = requests.put(f"{url}/status", json={"status": "ok", "messages": []}, headers=org_headers("bad"), timeout=5)
    assert put.status_code == 401 and hull.statuses(HULL_ID) == []


def test_extract_streams_a_large_generated_file(hull):
    produced = {"count": 0}

    def lines():
        for number in range(100_000):
            produced["count"] += 1
            yield {"id": number}

    url = hull.serve_extract("big", lines)
    with requests.get(url, stream=True, timeout=10) as response:
        assert response.headers["Transfer-Encoding"] == "chunked"
        chunks = response.iter_content(chunk_size=64 * 1024)
        first_chunk = next(chunks)
        assert produced["count"] < 100_000
        newlines = first_chunk.count(b"\n") + sum(chunk.count(b"\n") for chunk in chunks)
    assert first_chunk.startswith(b'{"id":0}\n{"id":1}\n')
    assert newlines == produced["count"] == 100_000


def test_synthetic_users_are_generated_lazily_per_download(hull):
    url = hull.serve_extract("users", synthetic_users(3, segment_ids=["seg-1"]))
    for _ in range(2):
        users = [json.loads(line) for line in requests.get(url, timeout=5).text.splitlines()]
        assert [user["email"] for user in users] == [f"user{n}@example.com" for n in range(3)]
        assert users[0]["segment_ids"] == ["seg-1"]


def test_extract_from_list_and_unknown_name(hull):
    url = hull.serve_extract("small", [{"id": "a"}, {"id": "b"}])
    assert requests.get(url, timeout=5).text == '{"id":"a"}\n{"id":"b"}\n'
    assert requests.get(f"{hull.url}/_extract/missing", timeout=5).status_code == 404


def test_hull_faults(hull):
    token = user_token({"email": "jane@example.com"})
    hull.fail(status=500, count=1)
    assert firehose(hull, item("traits", {"a": 1}, token)).status_code == 500
    assert hull.users() == {}
    hull.set_down(True)
    with pytest.raises(requests.ConnectionError):
        firehose(hull, item("traits", {"a": 1}, token))
    hull.set_down(False)
    assert firehose(hull, item("traits", {"a": 1}, token)).status_code == 200


# process mode

def start_process(module, *args):
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", *args], cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = process.stdout.readline().strip()
    if not line.startswith("listening on "):
        process.kill()
        raise AssertionError(f"unexpected first line {line!r}: {process.stderr.read()}")
    return process, line.removeprefix("listening on ")


def stop_process(process):
    process.terminate()
    try:
        assert process.wait(timeout=5) == 0
    finally:
        process.kill()
        process.stdout.close()
        process.stderr.close()


def test_process_mode_serves_and_exposes_state():
    cio_process, cio_url = start_process(
        "tests.fakes.customerio", "--site-id", "S", "--api-key", "K", "--rate-limit", "100")
    try:
        hull_process, hull_url = start_process("tests.fakes.hull", "--connector", f"{HULL_ID}:{HULL_SECRET}")
        try:
            check_customerio_process(cio_url)
            check_hull_process(hull_url)
        finally:
            stop_process(hull_process)
    finally:
        stop_process(cio_process)


def check_customerio_process(url):
    assert requests.put(f"{url}/api/v1/customers/u1", json={"a": 1}, auth=("S", "K"), timeout=5).ok
    state = requests.get(f"{url}/_fake/state", timeout=5).json()
    assert [person["id"] for person in state["people"]] == ["u1"]
    assert state["stats"]["requests"] == 1


def check_hull_process(url):
    token = user_token({"email": "jane@example.com"})
    response = requests.post(f"{url}/", json={"batch": [item("traits", {"a": 1}, token)]},
                             headers={"Hull-App-Id": HULL_ID, "Hull-Access-Token": HULL_SECRET}, timeout=5)
    assert response.status_code == 200
    extract = requests.post(f"{url}/_fake/extract", json={"name": "e", "count": 3}, timeout=5).json()
    assert len(requests.get(extract["url"], timeout=5).text.splitlines()) == 3
    assert requests.get(f"{url}/_fake/state", timeout=5).json()["users"]["jane@example.com"]["traits"] == {"a": 1}
