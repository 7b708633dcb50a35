"""Sync state (the per-user view support starts from) and sync logs; read-only, with retry actions."""
import operator
from functools import reduce

from django.contrib import admin, messages
from django.db.models import Q
from django.template.defaultfilters import truncatechars
from django.utils.html import format_html

from connector.admin import ReadOnlyModelAdmin, badge, change_link, json_html, table_html, when_link
from webhooks import actions
from webhooks.models import CustomerIOWebhook

from .models import SyncLog, SyncState

RECENT_ROWS = 50
OUTCOME_LEVELS = {"insert": "ok", "update": "ok", "events": "ok", "success": "ok", "delete": "info",
                  "deletion": "info", "skip": "skip", "error": "error"}


def _any_of(*pairs):
    """Q matching any (lookup, value) pair with a value: an empty email must not match every row without one."""
    return reduce(operator.or_, (Q(**{lookup: value}) for lookup, value in pairs if value), Q(pk__in=[]))


def user_logs(state, limit=RECENT_ROWS):
    """The user's recent SyncLog rows: everything logged for the Hull user, plus incoming rows for its ids."""
    incoming = Q(direction=SyncLog.Direction.INCOMING) & _any_of(("customerio_id", state.customerio_id),
                                                                 ("email", state.email))
    return (SyncLog.objects.filter(connector_id=state.connector_id)
            .filter(Q(hull_user_id=state.hull_user_id) | incoming).order_by("-created_at", "-pk")[:limit])


def user_webhooks(state, limit=RECENT_ROWS):
    """The user's recent Customer.io webhooks, by Hull user id, Customer.io ids or email."""
    match = _any_of(("hull_user_id", state.hull_user_id), ("customer_id", state.customerio_id),
                    ("customer_id", state.cio_id), ("email", state.email))
    return (CustomerIOWebhook.objects.filter(connector_id=state.connector_id).filter(match)
            .order_by("-received_at", "-pk")[:limit])


def _resync_message(result):
    text = f"{result.marked} users marked for resync: their next Hull update is sent even if unchanged."
    if result.requeued:
        text += f" {result.requeued} of them were queued now from their last stored notification."
    return text


@admin.register(SyncState)
class SyncStateAdmin(ReadOnlyModelAdmin):
    list_display = ("hull_user_id", "email", "external_id", "customerio_id", "outcome_badge", "reason_short",
                    "synced_at", "deleted_at", "updated_at", "connector")
    list_display_links = ("hull_user_id", "email")
    list_filter = ("connector", "last_outcome", "updated_at")
    search_fields = ("email__exact", "external_id__exact", "hull_user_id__exact", "customerio_id__exact",
                     "cio_id__exact")
    date_hierarchy = "updated_at"
    actions = ["resync_users"]
    fieldsets = [
        ("Last decision", {"fields": ["connector", "hull_user_id", "email", "external_id", "customerio_id", "cio_id",
                                      "outcome_badge", "last_reason", "synced_at", "deleted_at", "updated_at"]}),
        ("Attributes last sent to Customer.io", {"fields": ["last_payload_display"]}),
        ("Recent sync logs (both directions)", {"fields": ["recent_logs"]}),
        ("Recent Customer.io webhooks", {"fields": ["recent_webhooks"]}),
        ("Internals", {"classes": ["collapse"], "fields": [
            "last_indexed_at", "customerio_created_at", "payload_hash", "writeback_pending", "writeback_seq"]}),
    ]

    @admin.action(description="Resync selected users", permissions=["change"])
    def resync_users(self, request, queryset):
        self.message_user(request, _resync_message(actions.users_resync(queryset)), messages.SUCCESS)

    @admin.display(description="Last decision", ordering="last_outcome")
    def outcome_badge(self, obj):
        if not obj.last_outcome:
            return "—"
        return badge(OUTCOME_LEVELS.get(obj.last_outcome, "unknown"), obj.get_last_outcome_display(), obj.last_reason)

    @admin.display(description="Reason")
    def reason_short(self, obj):
        return truncatechars(obj.last_reason, 80)

    @admin.display(description="Last payload")
    def last_payload_display(self, obj):
        return json_html(obj.last_payload)

    @admin.display(description=f"Latest {RECENT_ROWS}")
    def recent_logs(self, obj):
        return table_html(
            ["When", "Action", "Outcome", "Reason / error", "Event id", "HTTP"],
            [(when_link(log, log.created_at), log.action,
              badge(OUTCOME_LEVELS.get(log.outcome, "unknown"), log.outcome),
              truncatechars(log.reason or log.error, 160), log.event_id, log.http_status or "")
             for log in user_logs(obj)],
            empty="No sync log for this user (older rows may have been purged by retention).")

    @admin.display(description=f"Latest {RECENT_ROWS}")
    def recent_webhooks(self, obj):
        return table_html(
            ["Received", "Event", "Event id", "Email", "Customer.io id", "Status", "Reason"],
            [(when_link(row, row.received_at), row.event_name or row.metric,
              row.event_id, row.email, row.customer_id, row.get_status_display(), truncatechars(row.reason, 120))
             for row in user_webhooks(obj)],
            empty="No Customer.io webhook for this user.")


@admin.register(SyncLog)
class SyncLogAdmin(ReadOnlyModelAdmin):
    list_display = ("created_at", "action", "outcome", "email", "external_id", "customerio_id", "event_id",
                    "reason", "http_status", "connector")
    list_filter = ("connector", "direction", "outcome", "action", "created_at")
    search_fields = ("email__exact", "external_id__exact", "hull_user_id__exact", "customerio_id__exact",
                     "event_id__exact", "source__exact")
    date_hierarchy = "created_at"
    actions = ["retry_failed"]
    fields = ("connector", "created_at", "action", "direction", "outcome", "hull_user_id", "user_view", "email",
              "external_id", "customerio_id", "event_id", "reason", "error", "http_status", "duration_ms", "source",
              "data_display")

    @admin.action(description="Retry failed (resync users, replay webhooks)", permissions=["change"])
    def retry_failed(self, request, queryset):
        result = actions.logs_retry(queryset)
        self.message_user(request, f"{_resync_message(result.users)} {result.webhooks} Customer.io webhooks "
                                   "queued for replay. Rows that were not errors were left alone.", messages.SUCCESS)

    @admin.display(description="Per-user view")
    def user_view(self, obj):
        state = None
        if obj.hull_user_id:
            state = SyncState.objects.filter(connector_id=obj.connector_id, hull_user_id=obj.hull_user_id).first()
        return change_link(state, format_html("Open {}", state)) if state else "—"

    @admin.display(description="Data")
    def data_display(self, obj):
        return json_html(obj.data)
