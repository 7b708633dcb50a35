from django.contrib import admin

from connector.admin import ReadOnlyModelAdmin, json_html

from .models import SyncLog, SyncState


@admin.register(SyncState)
class SyncStateAdmin(ReadOnlyModelAdmin):
    list_display = ("hull_user_id", "email", "external_id", "customerio_id", "last_outcome", "synced_at",
                    "deleted_at", "updated_at", "connector")
    list_filter = ("connector", "last_outcome", "updated_at")
    search_fields = ("email__exact", "external_id__exact", "hull_user_id__exact", "customerio_id__exact",
                     "cio_id__exact")
    date_hierarchy = "updated_at"
    fields = ("connector", "hull_user_id", "email", "external_id", "customerio_id", "cio_id", "last_outcome",
              "last_reason", "synced_at", "deleted_at", "last_indexed_at", "customerio_created_at", "payload_hash",
              "last_payload_display", "writeback_pending", "writeback_seq", "updated_at")

    @admin.display(description="Last payload")
    def last_payload_display(self, obj):
        return json_html(obj.last_payload)


@admin.register(SyncLog)
class SyncLogAdmin(ReadOnlyModelAdmin):
    list_display = ("created_at", "action", "outcome", "email", "external_id", "customerio_id", "event_id",
                    "reason", "http_status", "connector")
    list_filter = ("connector", "direction", "outcome", "action", "created_at")
    search_fields = ("email__exact", "external_id__exact", "hull_user_id__exact", "customerio_id__exact",
                     "event_id__exact", "source__exact")
    date_hierarchy = "created_at"
    fields = ("connector", "created_at", "action", "direction", "outcome", "hull_user_id", "email", "external_id",
              "customerio_id", "event_id", "reason", "error", "http_status", "duration_ms", "source",
              "data_display")

    @admin.display(description="Data")
    def data_display(self, obj):
        return json_html(obj.data)
