from django.contrib import admin

from connector.admin import ReadOnlyModelAdmin, body_html

from .models import CustomerIOWebhook, HullNotification


class InboxRowAdmin(ReadOnlyModelAdmin):
    date_hierarchy = "received_at"

    @admin.display(description="Body")
    def body_display(self, obj):
        return body_html(obj.body)


@admin.register(HullNotification)
class HullNotificationAdmin(InboxRowAdmin):
    list_display = ("received_at", "kind", "notification_id", "channel", "message_count", "status", "attempts",
                    "processed_at", "connector")
    list_filter = ("connector", "kind", "status", "received_at")
    search_fields = ("notification_id__exact",)
    fields = ("connector", "kind", "notification_id", "channel", "status", "reason", "attempts", "message_count",
              "progress_done", "received_at", "processed_at", "body_display")


@admin.register(CustomerIOWebhook)
class CustomerIOWebhookAdmin(InboxRowAdmin):
    list_display = ("received_at", "event_name", "object_type", "metric", "email", "customer_id", "event_id",
                    "status", "signature_valid", "connector")
    list_filter = ("connector", "status", "object_type", "metric", "signature_valid", "received_at")
    search_fields = ("email__exact", "customer_id__exact", "event_id__exact", "hull_user_id__exact")
    fields = ("connector", "event_id", "object_type", "metric", "event_name", "email", "customer_id", "hull_user_id",
              "signature_valid", "status", "reason", "attempts", "received_at", "processed_at", "body_display")
