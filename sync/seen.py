"""Remember the segments, event names and attributes a connector's traffic contains (admin pickers)."""
import threading
import time

from django.utils import timezone

from connector.models import SeenValue

CACHE_SECONDS = 600
MAX_VALUE_LENGTH = 255
_cache = {}
_lock = threading.Lock()


def _list(value):
    return value if isinstance(value, list) else []


def _segment_label(segment):
    name = segment.get("name")
    return name[:MAX_VALUE_LENGTH] if isinstance(name, str) else ""


def seen_in_notification(body):
    """{(kind, value): label} found in a smart-notifier body (pure; malformed parts are passed over)."""
    found = {}
    for segment in _list(body.get("segments")):
        if isinstance(segment, dict) and isinstance(segment.get("id"), str):
            found[(SeenValue.Kind.SEGMENT, segment["id"])] = _segment_label(segment)
    for message in _list(body.get("messages")):
        _seen_in_message(message, found)
    return {key: label for key, label in found.items() if key[1] and len(key[1]) <= MAX_VALUE_LENGTH}


def _seen_in_message(message, found):
    if not isinstance(message, dict):
        return
    for segment in _list(message.get("segments")):
        if isinstance(segment, dict) and isinstance(segment.get("id"), str):
            found.setdefault((SeenValue.Kind.SEGMENT, segment["id"]), _segment_label(segment))
    user = message.get("user") if isinstance(message.get("user"), dict) else {}
    for name in user:
        found.setdefault((SeenValue.Kind.ATTRIBUTE, name), "")
    account = message.get("account") if isinstance(message.get("account"), dict) else {}
    for name in account:
        found.setdefault((SeenValue.Kind.ATTRIBUTE, f"account.{name}"), "")
    for event in _list(message.get("events")):
        if isinstance(event, dict) and isinstance(event.get("event"), str):
            found.setdefault((SeenValue.Kind.EVENT, event["event"]), "")


def _fresh(connector_id, keys):
    """Keys not recorded by this process in the last CACHE_SECONDS; marks them recorded."""
    now = time.monotonic()
    with _lock:
        recorded = _cache.setdefault(connector_id, {})
        new = [key for key in keys if now - recorded.get(key, -CACHE_SECONDS) >= CACHE_SECONDS]
        for key in new:
            recorded[key] = now
    return new


def seen_values_record(connector, body):
    """Upsert what this notification shows, skipping what this process recorded recently."""
    found = seen_in_notification(body)
    keys = sorted(_fresh(connector.pk, list(found)))
    if not keys:
        return 0
    now = timezone.now()
    rows = [SeenValue(connector=connector, kind=kind, value=value, label=found[(kind, value)],
                      last_seen_at=now) for kind, value in keys]
    SeenValue.objects.bulk_create(rows, update_conflicts=True, unique_fields=["connector", "kind", "value"],
                                  update_fields=["label", "last_seen_at"])
    return len(rows)
