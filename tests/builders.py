"""Builders for realistic Hull payloads used across tests and benchmarks."""
import itertools
import uuid
from datetime import datetime, timedelta, timezone

_counter = itertools.count(1)
BASE_TIME = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


def hull_event(name="page", user_id="u1", minutes=0, properties=None, event_id=None):
    return {
        "event_id": event_id or str(uuid.uuid4()), "event": name, "event_type": "track", "event_source": "segment",
        "user_id": user_id, "anonymous_id": f"anon-{user_id}",
        "created_at": (BASE_TIME + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "properties": properties if properties is not None else {"url": "https://example.com/pricing"},
        "context": {},
    }


def hull_message(user_id=None, email="default", external_id="default", segments=(("seg-1", "Hull Users"),),
                 indexed_minutes=0, events=(), account=None, **traits):
    """One smart-notifier message; traits are flat Hull attributes (traits_plan=…, first_name=…)."""
    n = next(_counter)
    user_id = user_id or f"hull-user-{n}"
    user = {
        "id": user_id,
        "email": f"{user_id}@example.com" if email == "default" else email,
        "external_id": f"ext-{user_id}" if external_id == "default" else external_id,
        "anonymous_ids": [f"anon-{user_id}"],
        "created_at": "2026-01-02T03:04:05Z",
        "indexed_at": iso(BASE_TIME + timedelta(minutes=indexed_minutes)),
        "segment_ids": [sid for sid, _ in segments],
    }
    user = {k: v for k, v in user.items() if v is not None}
    user.update(traits)
    return {
        "user": user,
        "account": account or {},
        "segments": [{"id": sid, "name": name, "type": "users_segment"} for sid, name in segments],
        "events": list(events),
        "changes": {"is_new": False, "user": {}, "segments": {}},
    }


def notification(connector, messages, notification_id=None, channel="user:update", secret=None):
    return {
        "notification_id": notification_id or str(uuid.uuid4()),
        "channel": channel,
        "configuration": {"id": connector.hull_id, "organization": connector.hull_organization,
                          "secret": connector.hull_secret if secret is None else secret},
        "connector": {"id": connector.hull_id, "private_settings": {}},
        "segments": [{"id": "seg-1", "name": "Hull Users"}],
        "messages": list(messages),
    }


def fail_inserts_into(monkeypatch, model, message="server closed the connection unexpectedly"):
    """Make every INSERT into ``model``'s table raise OperationalError, however the code issues it."""
    from django.db import OperationalError
    from django.db.backends.utils import CursorWrapper

    execute = CursorWrapper.execute
    marker = f'INSERT INTO "{model._meta.db_table}"'

    def failing(self, sql, params=None):
        if sql.startswith(marker):
            raise OperationalError(message)
        return execute(self, sql, params)

    monkeypatch.setattr(CursorWrapper, "execute", failing)
