"""Bad input on every endpoint, table-driven: a clear 4xx (or a per-user reason in SyncLog), never a 500,
nothing half-written, and the server keeps serving. Runs on SQLite and, with DATABASE_URL, on PostgreSQL,
where NUL characters cannot be stored in text columns."""
import json
import uuid

import pytest
from django.test import Client

from sync.models import SyncLog, SyncState
from tests.builders import hull_event, hull_message, notification
from tests.fakes.customerio import FakeCustomerIO
from tests.fakes.hull import FakeHull
from webhooks.models import CustomerIOWebhook, HullNotification, InboxStatus

pytestmark = pytest.mark.django_db

SITE, KEY = "site-bad-input", "key-bad-input"
HULL_SECRET = "hull-secret-bad-input-0123456789abcdef"
MB = 1024 * 1024
DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture(scope="module")
def fakes():
    with FakeCustomerIO(site_id=SITE, api_key=KEY) as cio, FakeHull() as hull:
        yield cio, hull


@pytest.fixture
def cio(fakes):
    fakes[0].reset()
    return fakes[0]


@pytest.fixture
def hull(fakes):
    fakes[1].reset()
    return fakes[1]


@pytest.fixture
def connector(connector_factory, cio, hull, monkeypatch):
    monkeypatch.setenv("CUSTOMERIO_TRACK_URL", cio.url)
    monkeypatch.setenv("HULL_FIREHOSE_URL", hull.url)
    monkeypatch.delenv("HULL_SMART_NOTIFIER_PUBLIC_KEY", raising=False)
    made = connector_factory(hull_organization=hull.url, hull_secret=HULL_SECRET, site_id=SITE, api_key=KEY,
                             events_filter=["Signed Up"], rate_limit_per_second=1000,
                             synchronized_attributes=["traits_first_name", "traits_blob", "traits_nested"])
    hull.add_connector(made.hull_id, HULL_SECRET)
    hull.set_segments([{"id": "seg-1", "name": "Hull Users"}])
    return made


class _Http:
    """A client that turns server errors into 500 responses (as a real server does) instead of raising,
    and runs what each request enqueued on commit (tasks run eagerly), as the worker would."""

    def __init__(self, capture):
        self._client, self._capture = Client(raise_request_exception=False), capture

    def post(self, *args, **kwargs):
        with self._capture(execute=True):
            return self._client.post(*args, **kwargs)

    def get(self, *args, **kwargs):
        with self._capture(execute=True):
            return self._client.get(*args, **kwargs)


@pytest.fixture
def http(django_capture_on_commit_callbacks):
    return _Http(django_capture_on_commit_callbacks)


def query(connector, **overrides):
    params = {"ship": connector.hull_id, "organization": "org.hullapp.io", "secret": HULL_SECRET, **overrides}
    return "&".join(f"{k}={v}" for k, v in params.items())


def good_notification(connector):
    return json.dumps(notification(connector, [hull_message(user_id="good")])).encode()


def good_webhook(n=0):
    return json.dumps({"event_id": f"01HGOOD{uuid.uuid4().hex[:12].upper()}", "object_type": "email",
                       "metric": "opened", "timestamp": 1717004000 + n,
                       "data": {"delivery_id": "d1", "identifiers": {"email": "good@example.com"},
                                "recipient": "good@example.com"}}).encode()


def changed(body, changes):
    """``body`` with top-level keys changed (None deletes), encoded."""
    for key, value in changes.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    return json.dumps(body).encode()


def smart(connector, **changes):
    """A valid smart-notifier body with top-level keys changed (None deletes)."""
    return changed(notification(connector, [hull_message(user_id="u1")]), changes)


def configuration(connector, **changes):
    config = {"id": connector.hull_id, "organization": "org", "secret": HULL_SECRET, **changes}
    return smart(connector, configuration=config)


def webhook(**changes):
    return changed(json.loads(good_webhook()), changes)


def webhook_data(**changes):
    body = json.loads(good_webhook())
    body["data"].update(changes)
    return json.dumps(body).encode()


# (id, endpoint, body builder(connector) → bytes, allowed statuses)
# endpoint: "smart" | "batch" | "status" | "webhook"; the body for status is ignored.
REQUESTS = [
    # non-JSON, invalid encodings, NUL bytes
    ("smart-not-json", "smart", lambda c: b"not json", {400}),
    ("smart-invalid-utf8", "smart", lambda c: b'{"channel": "\xff\xfe"}', {400}),
    ("smart-raw-nul", "smart", lambda c: smart(c).replace(b'"user:update"', b'"user:\x00update"'), {400}),
    ("smart-empty", "smart", lambda c: b"", {400}),
    ("smart-deep", "smart", lambda c: DEEP, {400}),
    ("smart-20mb", "smart", lambda c: b'{"pad": "' + b"a" * (20 * MB) + b'"}', {413}),
    ("batch-not-json", "batch", lambda c: b"<xml/>", {400}),
    ("batch-invalid-utf8", "batch", lambda c: b'{"url": "http://\xc3\x28"}', {400}),
    ("batch-deep", "batch", lambda c: DEEP, {400, 413}),
    ("batch-20mb", "batch", lambda c: b'{"url": "' + b"a" * (20 * MB) + b'"}', {413}),
    ("webhook-not-json", "webhook", lambda c: b"event_id=1", {400}),
    ("webhook-invalid-utf8", "webhook", lambda c: b'{"event_id": "\xed\xa0\x80"}', {400}),
    ("webhook-raw-nul", "webhook", lambda c: b'{"event_id": "a\x00b", "event_type": "email_opened"}', {400}),
    ("webhook-deep", "webhook", lambda c: DEEP, {400}),
    ("webhook-20mb", "webhook", lambda c: b'{"event_id": "' + b"a" * (20 * MB) + b'"}', {413}),
    ("status-20mb-body", "status", lambda c: b"a" * (20 * MB), {200, 413}),
    # JSON of the wrong shape
    ("smart-array", "smart", lambda c: b"[]", {400}),
    ("smart-string", "smart", lambda c: b'"user:update"', {400}),
    ("smart-null", "smart", lambda c: b"null", {400}),
    ("smart-empty-object", "smart", lambda c: b"{}", {400}),
    ("batch-array", "batch", lambda c: b'["http://x"]', {400}),
    ("webhook-array", "webhook", lambda c: b"[{}]", {400}),
    ("webhook-number", "webhook", lambda c: b"42", {400}),
    # wrong types and missing keys
    ("smart-configuration-list", "smart", lambda c: smart(c, configuration=[c.hull_id]), {400}),
    ("smart-configuration-id-number", "smart", lambda c: configuration(c, id=12345), {401}),
    ("smart-secret-list", "smart", lambda c: configuration(c, secret=[HULL_SECRET]), {401}),
    ("smart-secret-missing", "smart", lambda c: configuration(c, secret=None), {401}),
    ("smart-no-configuration", "smart", lambda c: smart(c, configuration=None), {400}),
    ("smart-notification-id-number", "smart", lambda c: smart(c, notification_id=7), {400}),
    ("smart-notification-id-missing", "smart", lambda c: smart(c, notification_id=None), {400}),
    ("smart-channel-null", "smart", lambda c: smart(c, channel=[]), {400}),
    ("smart-channel-missing", "smart", lambda c: smart(c, channel=None), {400}),
    ("smart-messages-object", "smart", lambda c: smart(c, messages={"user": {}}), {400}),
    ("smart-messages-numbers", "smart", lambda c: smart(c, messages=[1, 2]), {400}),
    ("smart-messages-missing", "smart", lambda c: smart(c, messages=None), {400}),
    ("batch-empty-object", "batch", lambda c: b"{}", {400}),
    ("batch-url-number", "batch", lambda c: b'{"url": 5}', {400}),
    ("batch-url-not-http", "batch", lambda c: b'{"url": "file:///etc/passwd"}', {400}),
    ("batch-format-csv", "batch", lambda c: b'{"url": "http://h/x", "format": "csv"}', {400}),
    ("batch-object-type-account", "batch", lambda c: b'{"url": "http://h/x", "object_type": "account_report"}',
     {400}),
    ("webhook-empty-object", "webhook", lambda c: b"{}", {400}),
    ("webhook-event-id-number", "webhook", lambda c: webhook(event_id=5), {400}),
    ("webhook-event-id-101", "webhook", lambda c: webhook(event_id="e" * 101), {400}),
    ("webhook-metric-number", "webhook", lambda c: webhook(metric=3), {400}),
    ("webhook-no-type", "webhook", lambda c: webhook(object_type=None, metric=None), {400}),
    ("webhook-timestamp-text", "webhook", lambda c: webhook(timestamp="yesterday"), {400}),
    ("webhook-timestamp-huge", "webhook", lambda c: webhook(timestamp=10 ** 30), {400}),
    ("webhook-data-list", "webhook", lambda c: webhook(data=[1]), {400}),
    # valid envelope, wrong types deeper down (accepted, then must be processed or failed with a reason)
    ("smart-segments-not-a-list", "smart", lambda c: smart(c, segments=True), {200, 400}),
    ("smart-message-events-number", "smart", lambda c: smart(c, messages=[{**hull_message(user_id="ev"),
                                                                            "events": 5}]), {200, 400}),
    ("smart-message-segments-number", "smart", lambda c: smart(c, messages=[{**hull_message(user_id="sg"),
                                                                              "segments": 5}]), {200, 400}),
    ("smart-message-user-list", "smart", lambda c: smart(c, messages=[{"user": ["u"]}]), {200, 400}),
    # \u0000 inside strings: valid JSON, but PostgreSQL text cannot hold NUL
    ("smart-nul-in-notification-id", "smart", lambda c: smart(c, notification_id="n\u00001"), {200, 400}),
    # escaped NULs are dropped before parsing, so this is the connector's own id again (secret still checked)
    ("smart-nul-in-connector-id", "smart", lambda c: configuration(c, id=c.hull_id + "\u0000"), {200}),
    ("smart-nul-in-secret", "smart", lambda c: configuration(c, secret="\u0000"), {401}),
    ("webhook-nul-in-event-id", "webhook", lambda c: webhook(event_id="01HNUL\u0000X"), {200, 400}),
    ("webhook-nul-in-email", "webhook", lambda c: webhook_data(identifiers={"email": "a\u0000b@example.com"}),
     {200, 400}),
    ("webhook-nul-in-customer-id", "webhook", lambda c: webhook_data(customer_id="c\u00001"), {200, 400}),
    ("webhook-nul-in-metric", "webhook", lambda c: webhook(metric="opened\u0000"), {200, 400}),
]

# Bad query strings and paths: (id, method, path builder, allowed statuses)
URLS = [
    ("status-no-params", "get", lambda c: "/hull/status", {401}),
    ("status-wrong-secret", "get", lambda c: f"/hull/status?{query(c, secret='nope')}", {401}),
    ("status-empty-secret", "get", lambda c: f"/hull/status?{query(c, secret='')}", {401}),
    ("status-unknown-ship", "post", lambda c: f"/hull/status?{query(c, ship='0' * 24)}", {401}),
    ("status-huge-ship", "get", lambda c: f"/hull/status?{query(c, ship='x' * 10_000)}", {401, 414}),
    ("status-nul-in-ship", "get", lambda c: f"/hull/status?{query(c, ship='%00')}", {401}),
    ("status-nul-in-secret", "get", lambda c: f"/hull/status?{query(c, secret='%00')}", {401}),
    ("batch-nul-in-ship", "post", lambda c: f"/hull/batch?{query(c, ship=c.hull_id + '%00')}", {401}),
    ("batch-no-params", "post", lambda c: "/hull/batch", {401}),
    ("webhook-unknown-token", "post", lambda c: "/customerio/webhook/nope", {404}),
    ("webhook-huge-token", "post", lambda c: "/customerio/webhook/" + "t" * 10_000, {404}),
    ("webhook-nul-in-token", "post", lambda c: f"/customerio/webhook/{c.webhook_token}%00", {404}),
    ("webhook-emoji-token", "post", lambda c: "/customerio/webhook/%F0%9F%98%80", {404}),
    ("smart-get", "get", lambda c: "/hull/smart-notifier", {405}),
]


def endpoint_path(endpoint, connector):
    return {"smart": "/hull/smart-notifier", "batch": f"/hull/batch?{query(connector)}",
            "status": f"/hull/status?{query(connector)}",
            "webhook": f"/customerio/webhook/{connector.webhook_token}"}[endpoint]


def assert_clear_client_error(response, allowed):
    assert response.status_code in allowed, (response.status_code, response.content[:300])
    assert response.status_code < 500
    if response.status_code >= 400 and response.status_code != 405:
        body = response.json()
        message = body.get("error") or body.get("messages") or [e.get("reason") for e in body.get("errors", [])]
        assert message and all(message), body


def assert_still_serving(http, connector):
    response = http.post("/hull/smart-notifier", good_notification(connector), content_type="application/json")
    assert response.status_code == 200, response.content[:300]
    response = http.post(f"/customerio/webhook/{connector.webhook_token}", good_webhook(),
                         content_type="application/json")
    assert response.status_code == 200, response.content[:300]


def assert_nothing_stuck():
    """An accepted delivery is processed (or failed with a reason) before the eager task returns."""
    for model in (HullNotification, CustomerIOWebhook):
        for row in model.objects.all():
            assert row.status != InboxStatus.PENDING, f"{model.__name__} {row.pk} left pending: {row.body[:200]}"
            if row.status not in (InboxStatus.DONE,):
                assert row.reason, f"{model.__name__} {row.pk} is {row.status} without a reason"


@pytest.mark.parametrize("name, endpoint, build, allowed", REQUESTS, ids=[r[0] for r in REQUESTS])
def test_bad_body_is_a_clear_4xx_and_the_server_keeps_serving(http, connector, name, endpoint, build, allowed):
    body = build(connector)
    path = endpoint_path(endpoint, connector)
    if endpoint == "status":
        response = http.post(path, body, content_type="application/octet-stream")
    else:
        response = http.post(path, body, content_type="application/json")

    assert_clear_client_error(response, allowed)
    if response.status_code >= 400:
        assert not HullNotification.objects.exists() and not CustomerIOWebhook.objects.exists()
    assert_nothing_stuck()
    assert_still_serving(http, connector)


@pytest.mark.parametrize("name, method, build, allowed", URLS, ids=[u[0] for u in URLS])
def test_bad_query_or_path_is_a_clear_4xx_and_the_server_keeps_serving(http, connector, name, method, build,
                                                                       allowed):
    body = good_webhook() if "webhook" in name else b'{"url": "http://127.0.0.1:9/x"}'
    response = getattr(http, method)(build(connector), body, content_type="application/json") \
        if method == "post" else http.get(build(connector))

    assert_clear_client_error(response, allowed)
    assert not HullNotification.objects.exists() and not CustomerIOWebhook.objects.exists()
    assert_still_serving(http, connector)


# --- odd users inside a valid notification: accepted, then one decision with a reason each ----------

def _user(user_id, **traits):
    return hull_message(user_id=user_id, **traits)


def _with_segments(user_id, count):
    message = hull_message(user_id=user_id)
    extra = [{"id": f"s{i}", "name": f"Segment number {i}"} for i in range(count)]
    message["segments"] += extra
    message["user"]["segment_ids"] += [s["id"] for s in extra]
    return message


def _nested(depth):
    value = "leaf"
    for _ in range(depth):
        value = [value]
    return value


# (id, message, expected SyncLog action, reason fragment)
USERS = [
    ("emoji-and-rtl", _user("rtl", email="zoë-😀@example.com", traits_first_name="שָׁלוֹם עולם ‏مرحبا 👩‍👩‍👧‍👦"),
     "outgoing.user.success", ""),
    ("value-at-limit", _user("at", traits_blob="é" * 500), "outgoing.user.success", ""),
    ("value-over-limit", _user("over", traits_blob="é" * 500 + "x"), "outgoing.user.error",
     "value is 1001 bytes (max 1000)"),
    ("identifier-at-limit", _user("idat", external_id="i" * 150), "outgoing.user.success", ""),
    ("identifier-over-limit", _user("idover", external_id="😀" * 38), "outgoing.user.error",
     "is 152 bytes (max 150)"),
    ("ten-thousand-segments", _with_segments("segs", 10_000), "outgoing.user.error", "hull_segments"),
    ("no-email", _user("noemail", email=None), "outgoing.user.skip", "email"),
    ("email-not-a-string", _user("emailnum", email=12345), "outgoing.user.skip", "email"),
    ("external-id-object", _user("extobj", external_id={"a": 1}), "outgoing.user.skip", "identifier"),
    ("deep-but-parseable-trait", _user("deep", traits_nested=_nested(500)), "outgoing.user.error",
     "value is"),
    ("event-data-too-big", hull_message(user_id="bigevent", events=[hull_event("Signed Up", "bigevent",
                                                                               properties={"x": "y" * 200_000})]),
     "outgoing.user.success", ""),
    ("numeric-user-id", _user(12345), "outgoing.user.success", ""),
    ("user-id-100-chars", _user("u" * 100), "outgoing.user.error", "characters long"),
    ("nul-in-trait", _user("nultrait", traits_first_name="a\u0000b"), "outgoing.user.", ""),
    ("nul-in-email", _user("nulmail", email="a\u0000b@example.com"), "outgoing.user.", ""),
    ("nul-in-user-id", _user("nul\u0000id"), "outgoing.user.", ""),
    ("nul-in-segment-name", hull_message(user_id="nulseg", segments=(("seg-1", "Hull\u0000Users"),)),
     "outgoing.user.", ""),
]


@pytest.mark.parametrize("name, message, action, reason", USERS, ids=[u[0] for u in USERS])
def test_odd_user_is_accepted_and_gets_one_decision_with_a_reason(http, connector, cio, name, message, action,
                                                                  reason):
    response = http.post("/hull/smart-notifier", json.dumps(notification(connector, [message])),
                         content_type="application/json")

    assert response.status_code == 200, response.content[:300]
    row = HullNotification.objects.get()
    assert row.status != InboxStatus.PENDING, f"left pending (attempts {row.attempts}): processing crashed"
    logs = list(SyncLog.objects.filter(action__startswith="outgoing.user."))
    assert len(logs) == 1, [(log.action, log.reason) for log in logs]
    assert logs[0].action.startswith(action)
    if action.endswith(("skip", "error")):
        assert reason in logs[0].reason and logs[0].reason
    if logs[0].action == "outgoing.user.success":
        assert cio.people()
    assert_still_serving(http, connector)


def test_emoji_and_rtl_reach_customerio_unchanged(http, connector, cio):
    name = "שָׁלוֹם عالم 😀"
    message = _user("uni", email="ünï@exämple.com", traits_first_name=name)
    http.post("/hull/smart-notifier", json.dumps(notification(connector, [message])),
              content_type="application/json")

    person = cio.person(id="ext-uni")
    assert person["attributes"]["first_name"] == name
    assert person["email"] == "ünï@exämple.com"
    assert SyncState.objects.get(hull_user_id="uni").last_outcome == "insert"


def test_odd_webhook_payloads_are_recorded_with_a_reason(http, connector, hull):
    bodies = [
        webhook_data(subject="שלום 😀 \u202eevil"),
        webhook(object_type="carrier_pigeon", metric="landed"),
        webhook_data(identifiers={}, recipient=None, customer_id=None, email_address=None),
        webhook_data(customer_id="c" * 5000),
    ]
    for body in bodies:
        response = http.post(f"/customerio/webhook/{connector.webhook_token}", body,
                             content_type="application/json")
        assert response.status_code == 200, response.content[:300]

    assert_nothing_stuck()
    statuses = sorted(CustomerIOWebhook.objects.values_list("status", flat=True))
    assert statuses == sorted([InboxStatus.DONE, InboxStatus.IGNORED, InboxStatus.FAILED, InboxStatus.DONE])
    assert [e["properties"]["subject"] for e in hull.events() if "subject" in e["properties"]] == [
        "שלום 😀 \u202eevil"]


def test_nul_inside_a_forwarded_property_does_not_wedge_the_inbox(http, connector, hull):
    response = http.post(f"/customerio/webhook/{connector.webhook_token}", webhook_data(subject="a\u0000b"),
                         content_type="application/json")

    assert response.status_code == 200
    assert_nothing_stuck()
    assert_still_serving(http, connector)


def test_an_event_too_big_to_send_gets_an_event_error_with_its_reason(http, connector, cio):
    message = hull_message(user_id="big", events=[hull_event("Signed Up", "big", properties={"x": "y" * 200_000}),
                                                  hull_event("Signed Up", "big", properties={"x": "fine"})])
    http.post("/hull/smart-notifier", json.dumps(notification(connector, [message])), content_type="application/json")

    assert len(cio.events()) == 1
    errors = list(SyncLog.objects.filter(action="outgoing.event.error").values_list("reason", flat=True))
    assert len(errors) == 1 and "bytes (max" in errors[0], list(SyncLog.objects.values_list("action", "reason"))
