from django.contrib import admin, messages

from connector.admin import ReadOnlyModelAdmin, body_html

from . import actions
from .models import CustomerIOWebhook, HullNotification


class InboxRowAdmin(ReadOnlyModelAdmin):
    date_hierarchy = "received_at"

    @admin.display(description="Body")
    def body_display(self, obj):
        return body_html(obj.body)


@admin.register(HullNotification)
class HullNotificationAdmin(InboxRowAdmin):
    list_display = ("received_at", "kind", "notification_id", "channel", "message_count", "progress_done", "status",
                    "attempts", "processed_at", "connector")
    list_filter = ("connector", "kind", "status", "received_at")
    search_fields = ("notification_id__exact",)
    actions = ["retry_failed"]
    fields = ("connector", "kind", "notification_id", "channel", "status", "reason", "attempts", "message_count",
              "progress_done", "received_at", "processed_at", "body_display")

    @admin.action(description="Retry failed (back to pending, processed again)", permissions=["change"])
    def retry_failed(self, request, queryset):
        count = actions.notifications_retry(queryset)
        skipped = queryset.count() - count
        text = f"{count} failed notifications queued for processing."
        if skipped:
            text += f" {skipped} selected rows had not failed and were left alone."
        self.message_user(request, text, messages.SUCCESS if count else messages.WARNING)


@admin.register(CustomerIOWebhook)
class CustomerIOWebhookAdmin(InboxRowAdmin):
    list_display = ("received_at", "event_name", "object_type", "metric", "email", "customer_id", "event_id",
                    "status", "signature_valid", "connector")
    list_filter = ("connector", "status", "object_type", "metric", "signature_valid", "received_at")
    search_fields = ("email__exact", "customer_id__exact", "event_id__exact", "hull_user_id__exact")
    actions = ["replay", "mark_ignored"]
    fields = ("connector", "event_id", "object_type", "metric", "event_name", "email", "customer_id", "hull_user_id",
              "signature_valid", "status", "reason", "attempts", "received_at", "processed_at", "body_display")

    @admin.action(description="Replay (forward to Hull again)", permissions=["change"])
    def replay(self, request, queryset):
        count = actions.webhooks_replay(queryset)
        skipped = queryset.count() - count
        text = f"{count} webhooks queued for forwarding to Hull."
        if skipped:
            text += (f" {skipped} were left alone: rejected deliveries (bad signature) are never replayed, and "
                     "ignored ones only once their event type maps to a Hull event.")
        self.message_user(request, text, messages.SUCCESS if count else messages.WARNING)

    @admin.action(description="Mark ignored (never forward)", permissions=["change"])
    def mark_ignored(self, request, queryset):
        count = actions.webhooks_mark_ignored(queryset)
        text = f"{count} webhooks marked ignored."
        skipped = queryset.count() - count
        if skipped:
            text += f" {skipped} were already done, ignored or rejected and were left alone."
        self.message_user(request, text, messages.SUCCESS if count else messages.WARNING)
