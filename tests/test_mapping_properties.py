"""Properties of the outgoing mapping over arbitrary JSON-ish Hull payloads (hypothesis)."""
import json
from datetime import timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.mapping import (
    ACTIONS, KnownState, attributes_hash, config_from_settings, decide, merge_messages, operations_for,
    parse_time, to_unix, validate_person,
)
from sync.ulid import CROCKFORD_ALPHABET, ulid_from_event_id, ulid_timestamp_ms

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIGHT = settings(FAST, max_examples=50)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
times = (st.datetimes(timezones=st.just(timezone.utc)).map(lambda moment: moment.isoformat())
         | st.datetimes().map(lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S UTC"))
         | st.integers(min_value=-10**15, max_value=10**15) | json_values)
USER_KEYS = ["id", "email", "external_id", "anonymous_ids", "created_at", "indexed_at", "segment_ids", "traits_plan",
             "last_seen_at", "traits_renewal_date", "traits_customerio/created_at", "traits_customerio/deleted_at",
             "traits_customerio/id", "traits_customerio/hash"]
users = st.dictionaries(st.sampled_from(USER_KEYS) | st.text(max_size=8), json_values | times, max_size=12)
events = st.fixed_dictionaries({}, optional={
    "event_id": st.text(max_size=8) | json_values, "event": st.sampled_from(["page", "Signed Up"]) | json_values,
    "created_at": times, "properties": json_values, "context": json_values, "anonymous_id": json_values,
})
segments = st.fixed_dictionaries({}, optional={"id": st.sampled_from(["s1", "s2"]) | json_values,
                                               "name": st.text(max_size=8) | json_values})
messages = st.fixed_dictionaries({"user": users}, optional={
    "segments": st.lists(segments, max_size=3) | json_values, "events": st.lists(events, max_size=3) | json_values,
    "account": json_values, "segment_ids": json_values,
})
configs = st.builds(
    lambda **settings_: config_from_settings(settings_),
    synchronized_segments=st.lists(st.sampled_from(["s1", "s2"]), max_size=2),
    enable_user_deletion=st.booleans(), anonymous_events=st.booleans(),
    events_filter=st.lists(st.sampled_from(["page", "Signed Up"]), max_size=2),
    user_id_mapping=st.sampled_from(["email", "external_id", "id", "traits_plan", "account.id"]),
    synchronized_attributes=st.lists(st.sampled_from(USER_KEYS + ["account.id", "traits_missing"]), max_size=6),
)
states = st.none() | st.builds(
    KnownState, customerio_id=st.text(max_size=8), cio_id=st.text(max_size=8), payload_hash=st.text(max_size=8),
    deleted=st.booleans(), last_indexed_at=st.none() | st.datetimes(timezones=st.just(timezone.utc)),
)


def utf8_len(text):
    return len(text.encode("utf-8"))


@FAST
@given(message=messages, config=configs, state=states)
def test_decide_never_raises_and_yields_sendable_operations(message, config, state):
    decision = decide(message, config, state)

    assert decision.action in ACTIONS
    for operation in operations_for(decision):
        json.dumps(operation)
        assert operation["identifiers"] and len(operation["identifiers"]) == 1
    assert (decision.action == "skip") == bool(decision.reason) or decision.action == "error"


@LIGHT
@given(st.lists(messages, max_size=5))
def test_merge_never_raises_and_keeps_one_message_per_user(batch):
    merged = merge_messages(batch)

    ids = [message["user"]["id"] for message in merged]
    assert len(ids) == len(set(map(str, ids)))


@FAST
@given(identifier=st.text(min_size=1, max_size=37),
       attributes=st.dictionaries(st.text(max_size=37), st.text(max_size=250) | st.integers() | st.booleans(),
                                  max_size=30))
def test_attributes_within_the_limits_have_no_violations(identifier, attributes):
    assert validate_person(identifier, attributes, config_from_settings({})) == []


@FAST
@given(identifier=st.text(max_size=30), name=st.text(max_size=30), value=st.text(max_size=60),
       limit=st.integers(min_value=1, max_value=60))
def test_a_violation_is_reported_exactly_when_a_limit_is_exceeded(identifier, name, value, limit):
    config = config_from_settings({"max_attribute_name_length": limit, "max_attribute_value_length": limit,
                                   "max_identifier_value_length": limit})

    violations = validate_person(identifier, {name: value}, config)

    expected = sum(utf8_len(text) > limit for text in (identifier, name, value))
    assert len(violations) == expected


@LIGHT
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=10), st.randoms())
def test_hash_does_not_depend_on_key_order(attributes, random):
    items = list(attributes.items())
    random.shuffle(items)

    assert attributes_hash(dict(items)) == attributes_hash(attributes)


@FAST
@given(event_id=st.text(), timestamp_ms=st.none() | st.integers(min_value=-10**20, max_value=10**20))
def test_ulid_is_deterministic_and_well_formed(event_id, timestamp_ms):
    ulid = ulid_from_event_id(event_id, timestamp_ms)

    assert ulid == ulid_from_event_id(event_id, timestamp_ms)
    assert len(ulid) == 26 and set(ulid) <= set(CROCKFORD_ALPHABET)
    assert 0 <= ulid_timestamp_ms(ulid) < 2**48


@FAST
@given(st.one_of(times, st.datetimes(), st.text(), st.floats(), st.integers()))
def test_parse_time_never_raises_and_is_utc(value):
    parsed = parse_time(value)

    assert parsed is None or parsed.tzinfo == timezone.utc


@FAST
@given(st.datetimes(timezones=st.just(timezone.utc)).map(lambda moment: moment.replace(microsecond=0)))
def test_iso_strings_round_trip_to_unix_seconds(moment):
    assert to_unix(moment.isoformat()) == int(moment.timestamp())
