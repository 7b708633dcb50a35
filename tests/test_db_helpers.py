"""sync/db.py: the hot-path statements store exactly what the ORM would, on SQLite and PostgreSQL."""
import pytest

from sync.db import bulk_insert, bulk_update, insert_unless_duplicate
from sync.models import SyncLog, SyncState
from webhooks.models import CustomerIOWebhook, InboxStatus

TRICKY = "tab\there, new\nline, cr\r, back\\slash \\N, quote ' \" , ünïcødé ✓, emoji 🎉"


@pytest.mark.django_db
def test_bulk_insert_round_trips_separators_backslashes_nulls_and_json(connector_factory):
    connector = connector_factory()
    logs = [
        SyncLog(connector=connector, action="outgoing.user.skip", direction="outgoing", outcome="skip",
                hull_user_id="u1", reason=TRICKY, data={"text": TRICKY, "nested": {"list": [1, None, True, 2.5]}},
                http_status=None, duration_ms=None),
        SyncLog(connector=connector, action="outgoing.user.success", direction="outgoing", outcome="success",
                hull_user_id="u2", email="u2@example.com", data={}, http_status=200, duration_ms=12),
    ]

    bulk_insert(SyncLog, logs)

    first, second = SyncLog.objects.order_by("hull_user_id")
    assert first.reason == TRICKY
    assert first.data == {"text": TRICKY, "nested": {"list": [1, None, True, 2.5]}}
    assert (first.http_status, first.duration_ms, first.error) == (None, None, "")
    assert first.created_at is not None and first.connector_id == connector.pk
    assert (second.email, second.http_status, second.duration_ms, second.data) == ("u2@example.com", 200, 12, {})


@pytest.mark.django_db
def test_bulk_update_writes_only_the_named_fields(connector_factory):
    connector = connector_factory()
    states = [SyncState.objects.create(connector=connector, hull_user_id=f"u{n}", email=f"old{n}@example.com",
                                       last_reason="kept") for n in range(3)]
    for state in states:
        state.email, state.last_payload, state.last_reason = TRICKY, {"k": TRICKY}, "not written"

    bulk_update(SyncState, states, ["email", "last_payload"])

    for state in SyncState.objects.all():
        assert (state.email, state.last_payload, state.last_reason) == (TRICKY, {"k": TRICKY}, "kept")


@pytest.mark.django_db
def test_insert_unless_duplicate_inserts_once_and_sets_the_primary_key(connector_factory):
    connector = connector_factory()
    first = CustomerIOWebhook(connector=connector, body="{}", event_id="ev-1", status=InboxStatus.PENDING)
    twin = CustomerIOWebhook(connector=connector, body="{}", event_id="ev-1", status=InboxStatus.PENDING)

    assert insert_unless_duplicate(first) is True
    assert insert_unless_duplicate(twin) is False

    stored = CustomerIOWebhook.objects.get()
    assert stored.pk == first.pk and twin.pk is None
    assert stored.received_at is not None and stored.attempts == 0 and stored.reason == ""


def test_compact_json_is_utf8_and_takes_what_orjson_refuses():
    from sync.encoding import compact_json

    assert compact_json({"name": "Zoë", "n": [1, 2.5, None, True]}) == '{"name":"Zoë","n":[1,2.5,null,true]}'.encode()
    assert compact_json({"big": 2 ** 70}) == b'{"big":1180591620717411303424}'


def test_parse_json_accepts_what_the_standard_library_accepts():
    from sync.encoding import parse_json

    assert parse_json('{"a": [1, "é"]}') == {"a": [1, "é"]}
    assert parse_json(b'{"big": 1180591620717411303424}') == {"big": 2 ** 70}
    assert parse_json('{"x": NaN}')["x"] != parse_json('{"x": NaN}')["x"]  # NaN, as json reads it
    assert parse_json('{"s": "\\ud800"}') == {"s": "\ud800"}
    with pytest.raises(ValueError):
        parse_json("{not json")
