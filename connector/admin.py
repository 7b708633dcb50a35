import json
import re

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from .forms import ConnectorForm
from .models import Connector
from .settings_io import public_base_url

REDACTED = "[redacted]"
REDACTED_KEYS = frozenset({"secret", "api_key", "hull_secret", "webhook_signing_key", "token", "password"})
# Same keys in text that is not valid JSON (e.g. a truncated body), as "key": "value" pairs.
REDACTED_PAIR = re.compile(
    r'("(?:%s)"\s*:\s*)"(?:[^"\\]|\\.)*"' % "|".join(sorted(REDACTED_KEYS)), re.IGNORECASE
)
MAX_DISPLAY_CHARS = 200_000


def redact_secrets(value):
    """A copy of JSON data with the value of every secret-named key, at any depth, replaced."""
    if isinstance(value, dict):
        return {key: REDACTED if str(key).lower() in REDACTED_KEYS else redact_secrets(item)
                for key, item in value.items()}
    if isinstance(value, list):
        return [redact_secrets(item) for item in value]
    return value


def _pre(text):
    if len(text) > MAX_DISPLAY_CHARS:
        text = f"{text[:MAX_DISPLAY_CHARS]}\n… truncated, {len(text)} characters in all"
    return format_html('<pre style="white-space: pre-wrap; max-height: 60em; overflow: auto;">{}</pre>', text)


def json_html(value):
    """JSON data pretty-printed in a <pre>, secrets redacted."""
    return _pre(json.dumps(redact_secrets(value), indent=2, ensure_ascii=False))


def body_html(body):
    """A raw request body pretty-printed in a <pre>, secrets redacted even when it is not valid JSON."""
    try:
        return json_html(json.loads(body))
    except ValueError:
        return _pre(REDACTED_PAIR.sub(rf'\1"{REDACTED}"', body))


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """Log and inbox rows: searchable and viewable, never added, edited or deleted by hand.

    Subclasses declare `fields`; every one of them is read-only. Change permission stays so
    that admin actions can act on rows. Search fields use `__exact`: support pastes whole
    emails and ids, and exact matches use the column indexes on tables of millions of rows.
    """

    list_select_related = ("connector",)
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        """Nothing on the page is editable; saving would only move auto_now timestamps."""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "show_save": False, "show_save_and_continue": False}
        return super().change_view(request, object_id, form_url, extra_context)


def _secret_row(name, change):
    return (name, f"clear_{name}") if change else name


@admin.register(Connector)
class ConnectorAdmin(admin.ModelAdmin):
    form = ConnectorForm
    list_display = ("name", "hull_id", "region", "status", "status_checked_at")
    list_filter = ("region", "status")
    search_fields = ("name", "hull_id")
    readonly_fields = ("status", "status_messages_list", "status_checked_at", "credentials_rejected_at")

    def get_fieldsets(self, request, obj=None):
        change = obj is not None
        return [
            ("Credentials", {"fields": [
                "name", "hull_id", "hull_organization", _secret_row("hull_secret", change), "site_id",
                _secret_row("api_key", change), "region"]}),
            ("Configuration", {"fields": [
                "synchronized_segments", "enable_user_deletion", "events_filter", "anonymous_events",
                "user_id_mapping"]}),
            ("Data mapping", {"fields": [
                "synchronized_attributes", "max_attribute_name_length", "max_attribute_value_length",
                "max_identifier_value_length"]}),
            ("Incoming webhook", {"fields": [
                "webhook_url", _secret_row("webhook_signing_key", change), "webhook_timestamp_tolerance",
                "forward_message_body", "update_hull_traits"]}),
            ("Advanced", {"classes": ["collapse"], "fields": ["rate_limit_per_second", "retention_days"]}),
            ("Status", {"fields": list(self.readonly_fields)}),
        ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.webhook_base_url = public_base_url(default=request.build_absolute_uri("/"))
        return form

    @admin.display(description="Status messages")
    def status_messages_list(self, obj):
        if not obj.status_messages:
            return "—"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((m,) for m in obj.status_messages)))
