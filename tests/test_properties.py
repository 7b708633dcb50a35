"""Hypothesis properties of the pure mapping, packing, validation, inbound and security functions that
tests/test_mapping_properties.py and tests/test_inbound.py do not cover."""
import hashlib
import hmac
import json
import string
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from connector.admin import REDACTED, redact_secrets
from connector.settings_io import SECRET_KEYS, settings_problems
from sync.customerio import MAX_OPERATION_BYTES, MAX_OPERATIONS_PER_REQUEST, MAX_REQUEST_BYTES, pack_operations
from sync.hull import FIREHOSE_MAX_BYTES, FIREHOSE_MAX_ITEMS, _firehose_batches, user_claims as hull_user_claims
from sync.mapping import (
    MAX_EVENT_NAME_BYTES, RESERVED_ATTRIBUTES, attribute_name, config_from_settings, event_operation,
    is_writeback_attribute, person_attributes, segment_names, validate_event,
)
from sync.seen import MAX_VALUE_LENGTH, seen_in_notification
from webhooks.batch import extract_message
from webhooks.inbound import hull_track_body, parse_email, parse_webhook, user_claims
from webhooks.security import customerio_signature_valid, secrets_match, timestamp_fresh

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIGHT = settings(FAST, max_examples=25)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
names = st.text(min_size=1, max_size=30)
hull_names = st.one_of(names, names.map(lambda n: f"traits_{n}"), names.map(lambda n: f"account.{n}"),
                       names.map(lambda n: f"traits_customerio/{n}"), st.sampled_from(
                           ["id", "email", "created_at", "traits_group/plan", "account.domain", "last_seen_at"]))


def utf8_len(text):
    return len(text.encode("utf-8"))


# --- attribute naming and person attributes -------------------------------------------------------

@FAST
@given(hull_names)
def test_attribute_names_drop_the_traits_prefix_and_slashes(flat):
    name = attribute_name(flat)

    assert "/" not in name
    if flat == "id":
        assert name == "hull_id"
    elif flat.startswith("account."):
        assert name == "account_" + flat[len("account."):].replace("/", "-")
    elif flat.startswith("traits_"):
        assert name == flat[len("traits_"):].replace("/", "-")
    else:
        assert name == flat.replace("/", "-")


users = st.dictionaries(st.sampled_from(["id", "email", "external_id", "created_at", "last_seen_at", "renewal_date",
                                         "traits_plan", "traits_customerio/id", "traits_customerio/hash",
                                         "traits_group/score", "hull_segments", "traits_email"]) | names,
                        json_values, max_size=10)


@FAST
@given(user=users, attributes=st.lists(hull_names | st.sampled_from(
    ["traits_customerio/id", "customerio/hash", "email", "traits_email", "hull_segments", "created_at"]), max_size=8),
    account=st.dictionaries(names, json_values, max_size=3),
    mapping=st.sampled_from(["external_id", "email", "id", "traits_plan"]))
def test_person_attributes_never_carry_writeback_traits_or_overwrite_reserved_ones(user, attributes, account,
                                                                                  mapping):
    config = config_from_settings({"synchronized_attributes": attributes, "user_id_mapping": mapping})
    message = {"user": user, "account": account, "segments": [{"id": "s", "name": "Segment"}]}

    result = person_attributes(message, config)

    json.dumps(result)
    written_back = {attribute_name(a) for a in attributes if is_writeback_attribute(a)}
    mapped = {attribute_name(a) for a in attributes if not is_writeback_attribute(a)} - RESERVED_ATTRIBUTES
    assert not (written_back - mapped) & set(result)
    assert result["hull_segments"] == ["Segment"]
    if "email" in result:
        assert result["email"] == user["email"]


@FAST
@given(st.lists(st.fixed_dictionaries({}, optional={"id": json_values, "name": json_values}) | json_values,
                max_size=6))
def test_segment_names_are_strings(segments):
    names_ = segment_names({"segments": segments, "user": {}})
    assert isinstance(names_, list) and all(isinstance(name, str) for name in names_)


@FAST
@given(name=st.text(max_size=60), properties=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))
def test_event_name_violation_exactly_when_over_the_byte_limit(name, properties):
    operation = event_operation({"event": name, "event_id": "e1", "properties": properties,
                                 "created_at": "2026-01-01T00:00:00Z"}, {"id": "p1"})
    violations = validate_event(operation)
    assert bool(violations) == (utf8_len(name) > MAX_EVENT_NAME_BYTES)


@FAST
@given(event_id=st.text(min_size=1, max_size=20), name=st.text(max_size=10), created=json_values)
def test_event_operation_id_is_stable_for_a_resent_event(event_id, name, created):
    event = {"event": name, "event_id": event_id, "created_at": created, "properties": {"a": 1}}
    first = event_operation(event, {"id": "p"})
    again = event_operation(json.loads(json.dumps(event)), {"email": "x@example.com"})
    assert first["id"] == again["id"]
    assert isinstance(first.get("timestamp", 0), int)


# --- request packing -------------------------------------------------------------------------------

op_sizes = st.lists(st.integers(min_value=2, max_value=MAX_OPERATION_BYTES + 2000), max_size=60)


@LIGHT
@given(op_sizes)
def test_pack_operations_keeps_order_and_limits_and_drops_only_oversize(sizes):
    encoded = [b"x" * size for size in sizes]

    chunks = pack_operations(encoded)

    flat = [index for chunk in chunks for index in chunk]
    assert flat == [i for i, op in enumerate(encoded) if len(op) <= MAX_OPERATION_BYTES]
    for chunk in chunks:
        assert chunk and len(chunk) <= MAX_OPERATIONS_PER_REQUEST
        body = len(b'{"batch":[]}') + sum(len(encoded[i]) for i in chunk) + len(chunk) - 1
        assert body <= MAX_REQUEST_BYTES


@LIGHT
@given(st.lists(st.integers(min_value=0, max_value=60_000), max_size=250))
def test_firehose_batches_keep_every_item_in_order_within_limits(sizes):
    items = [{"n": n, "pad": "p" * size} for n, size in enumerate(sizes)]

    batches = [[json.loads(encoded) for encoded in batch] for batch in _firehose_batches(items)]

    assert [item["n"] for batch in batches for item in batch] == list(range(len(items)))
    for batch in batches:
        assert 1 <= len(batch) <= FIREHOSE_MAX_ITEMS
        if len(batch) > 1:
            assert sum(len(json.dumps(i, separators=(",", ":"))) for i in batch) <= FIREHOSE_MAX_BYTES


@FAST
@given(st.dictionaries(st.sampled_from(["id", "email", "external_id", "anonymous_id", "phone", "name"]),
                       json_values, max_size=6))
def test_hull_claims_keep_only_known_non_empty_keys(values):
    claims = hull_user_claims(values)
    assert set(claims) <= {"id", "email", "external_id", "anonymous_id"}
    assert all(claims[key] for key in claims)


# --- inbound --------------------------------------------------------------------------------------

local_parts = st.text(alphabet=string.ascii_letters + string.digits + "._+-", min_size=1, max_size=12)
domains = st.lists(st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8), min_size=2,
                   max_size=3).map(".".join)
display_names = st.text(alphabet=st.characters(blacklist_characters="<>@\"", blacklist_categories=("Cs",)),
                        max_size=15)


@FAST
@given(local=local_parts, domain=domains, display=display_names)
def test_parse_email_finds_the_address_in_a_display_name(local, domain, display):
    address = f"{local}@{domain}"
    assert parse_email(f"{display} <{address}>") == address
    assert parse_email(address) == address


@FAST
@given(json_values)
def test_parse_email_returns_an_address_found_in_the_value_or_none(value):
    found = parse_email(value)
    assert found is None or (isinstance(value, str) and found in value and "@" in found)


webhook_payloads = st.fixed_dictionaries(
    {"event_id": st.text(min_size=1, max_size=30).filter(str.strip),
     "object_type": st.sampled_from(["email", "sms", "push", "customer", "in_app", "bogus"]),
     "metric": st.sampled_from(["opened", "clicked", "subscribed", "unsubscribed", "bounced", "nope"]),
     "timestamp": st.integers(min_value=0, max_value=4_000_000_000),
     "data": st.fixed_dictionaries({}, optional={
         "delivery_id": st.text(max_size=8), "customer_id": st.text(max_size=8) | st.integers(),
         "identifiers": st.fixed_dictionaries({}, optional={"id": st.text(max_size=8), "email": st.text(max_size=20),
                                                            "cio_id": st.text(max_size=8)}),
         "recipient": st.text(max_size=20), "subject": st.text(max_size=20), "href": st.text(max_size=20)})})


@FAST
@given(payload=webhook_payloads, mapping=st.sampled_from(["external_id", "id", "email", "traits_plan"]))
def test_forwarded_event_keeps_its_id_and_time_and_claims_are_non_empty_strings(payload, mapping):
    event = parse_webhook(payload)
    assume(event.name is not None)

    body = hull_track_body(event)
    claims = user_claims(event, mapping)

    json.dumps(body)
    assert body["event_id"] == payload["event_id"] and body["source"] == "customerio"
    assert body["created_at"].endswith("Z")
    assert set(claims) <= {"email", "external_id", "id"}
    assert all(isinstance(v, str) and v for v in claims.values())


@FAST
@given(payload=webhook_payloads)
def test_variables_and_content_are_never_forwarded_without_opt_in(payload):
    payload = {**payload, "data": {**payload["data"], "variables": {"secret": "x"}, "content": "<html>"}}
    event = parse_webhook(payload)
    assert "variables" not in event.properties and "content" not in event.properties


@FAST
@given(st.lists(st.dictionaries(st.sampled_from(["id", "email", "segment_ids", "account", "traits_x"]), json_values,
                                max_size=5), max_size=5),
       st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3), st.text(max_size=5))
def test_extract_lines_become_messages_without_events(lines, names_by_id, extra_segment):
    for line in lines:
        if not isinstance(line.get("segment_ids"), (list, type(None))):
            line["segment_ids"] = []
        message = extract_message(line, names_by_id, extra_segment)
        assert message["events"] == []
        assert [s["id"] for s in message["segments"]] == message["user"]["segment_ids"]
        assert "account" not in message["user"]
        if extra_segment:
            assert extra_segment in message["user"]["segment_ids"]


@FAST
@given(json_values)
def test_seen_values_never_raise_and_stay_within_the_column(body):
    body = body if isinstance(body, dict) else {"messages": [body], "segments": body}
    try:
        found = seen_in_notification(body)
    except (AttributeError, TypeError) as err:
        raise AssertionError(f"seen_in_notification crashed on {body!r}") from err
    assert all(0 < len(value) <= MAX_VALUE_LENGTH for _, value in found)


# --- validation of connector settings -------------------------------------------------------------

@FAST
@given(st.dictionaries(st.sampled_from(sorted(SECRET_KEYS) + ["name", "hull_id", "region", "events_filter",
                                                              "max_attribute_value_length", "bogus"]),
                       json_values, max_size=8))
def test_settings_validation_never_raises_and_never_echoes_secrets(data):
    problems = settings_problems(data)

    assert all(isinstance(message, str) and message for _, message in problems)
    text = " ".join(message for _, message in problems)
    for key in set(SECRET_KEYS) & set(data):
        value = data[key]
        if isinstance(value, str) and len(value) >= 4:
            assert value not in text


@FAST
@given(st.recursive(st.text(max_size=6) | st.integers(),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(
                        st.sampled_from(["secret", "api_key", "hull_secret", "name", "id", "Secret"]) | st.text(
                            max_size=4), children, max_size=3), max_leaves=10))
def test_redaction_hides_every_secret_named_key_at_any_depth(value):
    redacted = redact_secrets(value)

    def walk(node):
        if isinstance(node, dict):
            for key, item in node.items():
                if str(key).lower() in ("secret", "api_key", "hull_secret"):
                    assert item == REDACTED
                else:
                    walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(redacted)


# --- signatures -----------------------------------------------------------------------------------

@FAST
@given(key=st.text(min_size=1, max_size=40), timestamp=st.integers(min_value=0, max_value=2**33).map(str),
       body=st.binary(max_size=200), tamper=st.binary(min_size=1, max_size=5))
def test_customerio_signature_round_trip_and_tamper(key, timestamp, body, tamper):
    signature = hmac.new(key.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()

    assert customerio_signature_valid(key, timestamp, body, signature)
    assert customerio_signature_valid(key, timestamp, body, "v0=" + signature.upper())
    assert not customerio_signature_valid(key, timestamp, body + tamper, signature)
    assert not customerio_signature_valid(key + "x", timestamp, body, signature)
    assert not customerio_signature_valid(key, timestamp, body, "")


@FAST
@given(given_=json_values, expected=st.text(max_size=20))
def test_secrets_match_only_equal_non_empty_strings(given_, expected):
    assert secrets_match(given_, expected) == (bool(given_) and bool(expected) and str(given_) == expected)


@FAST
@given(now=st.integers(min_value=10**9, max_value=2 * 10**9), skew=st.integers(min_value=-10**6, max_value=10**6),
       tolerance=st.integers(min_value=0, max_value=10**5))
def test_timestamp_fresh_within_the_tolerance_only(now, skew, tolerance):
    fresh = timestamp_fresh(str(now + skew), tolerance, now=now)
    assert fresh == (tolerance == 0 or abs(skew) <= tolerance)
    assert timestamp_fresh("not-a-number", tolerance, now=now) == (tolerance == 0)


@FAST
@given(st.datetimes(timezones=st.just(timezone.utc)))
def test_mapping_date_attributes_become_integer_seconds(moment):
    config = config_from_settings({"synchronized_attributes": ["traits_trial_ends_at", "renewal_date"]})
    message = {"user": {"traits_trial_ends_at": moment.isoformat(), "renewal_date": moment.isoformat()}}
    attributes = person_attributes(message, config)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert attributes["trial_ends_at"] == attributes["renewal_date"] == (moment - epoch) // timedelta(seconds=1)
