"""Tests for sync.hull: user JWTs, firehose items and batching, REST calls — mocked and against FakeHull."""
import json
import logging
import time
from datetime import datetime

import jwt
import pytest
import requests
import responses

from sync.exceptions import CredentialsRejected, PermanentAPIError, RetryableAPIError
from sync.hull import FIREHOSE_MAX_ITEMS, HullClient, user_claims
from tests.fakes.hull import FakeHull

CONNECTOR_ID = "5a9d5c3e2f8e4b0012345678"
SECRET = "hull-secret-value-0123456789abcdef-0123"
ORG_URL = "https://abc123.hullapp.io"
FIREHOSE = "https://firehose.hullapp.io"


def make_client(secret=SECRET, org=ORG_URL, firehose=FIREHOSE, connector_id=CONNECTOR_ID):
    return HullClient(connector_id, secret, org, firehose)


def decode(token, secret=SECRET):
    return jwt.decode(token, secret, algorithms=["HS256"], issuer=CONNECTOR_ID, options={"require": ["iss", "iat"]})


def parse_iso(text):
    assert text.endswith("Z")
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


# --- JWT and items -------------------------------------------------------------------------

def test_user_token_claims_match_hull_client():
    claims = {"id": "5aa7ec6db5856ffa1b0a8fa0", "email": "jane@example.com", "external_id": "ext-1"}
    before = int(time.time())

    token = make_client().user_token(claims)

    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    decoded = decode(token)
    assert decoded["iss"] == CONNECTOR_ID
    assert isinstance(decoded["iat"], int) and before <= decoded["iat"] <= int(time.time())
    assert decoded["sub"] == "5aa7ec6db5856ffa1b0a8fa0"
    assert decoded["io.hull.asUser"] == claims
    assert decoded["io.hull.subjectType"] == "user"


def test_user_token_without_hull_id_has_no_sub():
    decoded = decode(make_client().user_token({"email": "jane@example.com"}))
    assert "sub" not in decoded
    assert decoded["io.hull.asUser"] == {"email": "jane@example.com"}


def test_user_token_is_signed_with_the_connector_secret():
    token = make_client().user_token({"id": "u1"})
    with pytest.raises(jwt.InvalidSignatureError):
        decode(token, secret="another-secret-value-0123456789abcdef")


@pytest.mark.parametrize("values, expected", [
    ({"id": "u1", "email": "a@b.c", "external_id": "x", "anonymous_id": "an", "name": "Jane"},
     {"id": "u1", "email": "a@b.c", "external_id": "x", "anonymous_id": "an"}),
    ({"id": "u1", "email": "", "external_id": None, "anonymous_ids": ["an"]}, {"id": "u1"}),
    ({"email": "a@b.c"}, {"email": "a@b.c"}),
])
def test_user_claims_keep_only_non_empty_identity_claims(values, expected):
    assert user_claims(values) == expected


def test_traits_item_prefixes_every_key_with_the_source():
    item = make_client().traits_item({"id": "u1"}, {"id": "jane@example.com", "created_at": 1520954477,
                                                     "deleted_at": None})
    assert item["type"] == "traits"
    assert item["body"] == {"customerio/id": "jane@example.com", "customerio/created_at": 1520954477,
                            "customerio/deleted_at": None}
    assert decode(item["headers"]["Hull-Access-Token"])["io.hull.asUser"] == {"id": "u1"}
    parse_iso(item["timestamp"])


def test_traits_item_without_source_keeps_keys():
    item = make_client().traits_item({"id": "u1"}, {"plan": "pro"}, source=None)
    assert item["body"] == {"plan": "pro"}


def test_track_item_carries_the_body_as_is():
    body = {"event": "Email Opened", "properties": {"campaign_id": "12"}, "event_id": "e-1", "ip": "0"}
    item = make_client().track_item({"email": "jane@example.com"}, body)
    assert item["type"] == "track" and item["body"] == body
    assert decode(item["headers"]["Hull-Access-Token"])["io.hull.asUser"] == {"email": "jane@example.com"}


# --- firehose with mocked HTTP -------------------------------------------------------------

def test_firehose_body_shape_and_headers(mocked):
    mocked.add(responses.POST, FIREHOSE, json={"ok": True})
    client = make_client()
    items = [client.traits_item({"id": "u1"}, {"id": "x"}), client.track_item({"id": "u1"}, {"event": "E"})]

    assert client.firehose(items) == 1

    request = mocked.calls[0].request
    body = json.loads(request.body)
    assert set(body) == {"batch", "timestamp", "sentAt"}
    assert body["batch"] == items
    parse_iso(body["timestamp"])
    parse_iso(body["sentAt"])
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Hull-App-Id"] == CONNECTOR_ID
    assert request.headers["Hull-Access-Token"] == SECRET
    assert request.headers["Hull-Organization"] == "abc123.hullapp.io"


def test_firehose_batches_at_100_items(mocked):
    mocked.add(responses.POST, FIREHOSE, json={"ok": True})
    client = make_client()
    items = [client.traits_item({"id": f"u{i}"}, {"n": i}) for i in range(250)]

    assert client.firehose(items) == 3

    sizes = [len(json.loads(call.request.body)["batch"]) for call in mocked.calls]
    assert sizes == [FIREHOSE_MAX_ITEMS, FIREHOSE_MAX_ITEMS, 50] == [100, 100, 50]
    sent = [item for call in mocked.calls for item in json.loads(call.request.body)["batch"]]
    assert [item["body"]["customerio/n"] for item in sent] == list(range(250))


def test_firehose_of_exactly_100_items_is_one_request(mocked):
    mocked.add(responses.POST, FIREHOSE, json={"ok": True})
    client = make_client()
    assert client.firehose([client.traits_item({"id": f"u{i}"}, {"n": i}) for i in range(100)]) == 1


def test_firehose_of_nothing_sends_nothing(mocked):
    assert make_client().firehose([]) == 0
    assert len(mocked.calls) == 0


def test_firehose_401_raises_credentials_rejected(mocked):
    mocked.add(responses.POST, FIREHOSE, status=401, json={"error": "Invalid credentials"})
    with pytest.raises(CredentialsRejected):
        make_client().firehose([make_client().traits_item({"id": "u1"}, {"a": 1})])
    assert len(mocked.calls) == 1


def test_firehose_400_is_permanent(mocked):
    mocked.add(responses.POST, FIREHOSE, status=400, json={"error": "bad"})
    with pytest.raises(PermanentAPIError) as caught:
        make_client().firehose([make_client().traits_item({"id": "u1"}, {"a": 1})])
    assert caught.value.status == 400 and not caught.value.retryable
    assert len(mocked.calls) == 1


def test_firehose_500_retried_then_succeeds(mocked, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "3")
    mocked.add(responses.POST, FIREHOSE, status=500)
    mocked.add(responses.POST, FIREHOSE, body=requests.ConnectionError("reset"))
    mocked.add(responses.POST, FIREHOSE, json={"ok": True})
    assert make_client().firehose([make_client().traits_item({"id": "u1"}, {"a": 1})]) == 1
    assert len(mocked.calls) == 3


def test_firehose_500_exhausted_raises_retryable(mocked, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "2")
    mocked.add(responses.POST, FIREHOSE, status=503)
    with pytest.raises(RetryableAPIError) as caught:
        make_client().firehose([make_client().traits_item({"id": "u1"}, {"a": 1})])
    assert caught.value.retryable and caught.value.status == 503
    assert len(mocked.calls) == 2


def test_put_status_and_segments_use_the_organization_api(mocked):
    mocked.add(responses.PUT, f"{ORG_URL}/api/v1/{CONNECTOR_ID}/status", json={})
    mocked.add(responses.GET, f"{ORG_URL}/api/v1/users_segments", json=[{"id": "s1", "name": "Leads"}])
    client = make_client(org=ORG_URL + "/")

    client.put_status("warning", ["careful"])
    assert client.segments() == [{"id": "s1", "name": "Leads"}]

    put = mocked.calls[0].request
    assert json.loads(put.body) == {"status": "warning", "messages": ["careful"]}
    assert put.headers["Hull-Access-Token"] == SECRET and put.headers["Hull-App-Id"] == CONNECTOR_ID


def test_secret_is_never_in_errors_or_logs(mocked, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "2")
    client = make_client()
    item = client.traits_item({"id": "u1"}, {"a": 1})
    mocked.add(responses.POST, FIREHOSE, status=401)
    mocked.add(responses.PUT, f"{ORG_URL}/api/v1/{CONNECTOR_ID}/status", status=502)
    errors = []
    for call in (lambda: client.firehose([item]), lambda: client.put_status("ok", [])):
        with pytest.raises(Exception) as caught:
            call()
        errors.append(caught.value)
    for text in [caplog.text, *(str(e) for e in errors), *(repr(e) for e in errors)]:
        assert SECRET not in text


# --- against FakeHull ----------------------------------------------------------------------

@pytest.fixture
def hull():
    with FakeHull(connectors={CONNECTOR_ID: SECRET}) as fake:
        yield fake


def fake_client(hull, secret=SECRET):
    return make_client(secret=secret, org=hull.url, firehose=hull.url)


def test_fake_hull_stores_traits_and_events(hull):
    client = fake_client(hull)
    items = [
        client.traits_item({"id": "u1", "email": "jane@example.com"},
                           {"id": "ext-1", "created_at": 1520954477, "deleted_at": None}),
        client.track_item({"id": "u1"}, {"event": "Email Opened", "event_id": "ev-1", "properties": {"c": "12"}}),
    ]

    assert client.firehose(items) == 1

    assert hull.traits("u1") == {"customerio/id": "ext-1", "customerio/created_at": 1520954477}
    assert hull.user("u1")["claims"] == {"id": "u1", "email": "jane@example.com"}
    [stored] = hull.events(user_key="u1")
    assert stored["event"] == "Email Opened" and stored["event_id"] == "ev-1" and stored["properties"] == {"c": "12"}


def test_fake_hull_null_trait_clears_it(hull):
    client = fake_client(hull)
    client.firehose([client.traits_item({"id": "u1"}, {"id": "ext-1", "hash": "h"})])
    client.firehose([client.traits_item({"id": "u1"}, {"id": None, "hash": None, "deleted_at": "2026-01-01"})])
    assert hull.traits("u1") == {"customerio/deleted_at": "2026-01-01"}


def test_fake_hull_receives_batches_of_100(hull):
    client = fake_client(hull)
    items = [client.traits_item({"id": f"u{i}"}, {"n": i}) for i in range(205)]
    assert client.firehose(items) == 3
    stats = hull.stats()
    assert stats["firehose_requests"] == 3 and stats["firehose_items"] == 205
    assert hull.traits("u204") == {"customerio/n": 204}


def test_fake_hull_wrong_secret_is_credentials_rejected(hull, caplog):
    caplog.set_level(logging.DEBUG)
    client = fake_client(hull, secret="wrong-secret-value-0123456789abcdef")
    with pytest.raises(CredentialsRejected):
        client.firehose([client.traits_item({"id": "u1"}, {"a": 1})])
    assert hull.users() == {}
    assert "wrong-secret-value" not in caplog.text


def test_fake_hull_500_retried(hull, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "4")
    hull.fail(status=500, count=2)
    client = fake_client(hull)
    client.firehose([client.traits_item({"id": "u1"}, {"a": 1})])
    assert hull.stats()["by_status"] == {500: 2, 200: 1}
    assert hull.traits("u1") == {"customerio/a": 1}


def test_fake_hull_down_raises_retryable(hull, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "2")
    hull.set_down()
    client = fake_client(hull)
    with pytest.raises(RetryableAPIError):
        client.firehose([client.traits_item({"id": "u1"}, {"a": 1})])
    assert hull.users() == {}


def test_fake_hull_status_and_segments(hull):
    hull.set_segments([{"id": "s1", "name": "Leads"}])
    client = fake_client(hull)
    client.put_status("error", ["Invalid Credentials: Verify Site ID and API Key in Settings."])
    assert hull.statuses(CONNECTOR_ID) == [{"status": "error",
                                            "messages": ["Invalid Credentials: Verify Site ID and API Key in Settings."]}]
    assert client.segments() == [{"id": "s1", "name": "Leads"}]


def test_fake_hull_status_with_wrong_secret(hull):
    with pytest.raises(CredentialsRejected):
        fake_client(hull, secret="nope-nope-nope-nope-nope-nope-nope").put_status("ok", [])
    assert hull.statuses(CONNECTOR_ID) == []


# --- connector URLs --------------------------------------------------------------------------

def test_connector_firehose_url_from_organization_or_env(connector_factory, monkeypatch):
    monkeypatch.delenv("HULL_FIREHOSE_URL", raising=False)
    connector = connector_factory(hull_organization="abc123.hullapp.io")
    assert connector.hull_base_url == "https://abc123.hullapp.io"
    assert connector.firehose_url == "https://firehose.hullapp.io"
    monkeypatch.setenv("HULL_FIREHOSE_URL", "http://127.0.0.1:9002/")
    assert connector.firehose_url == "http://127.0.0.1:9002"
    local = connector_factory(hull_organization="http://127.0.0.1:9002/")
    assert local.hull_base_url == "http://127.0.0.1:9002"
