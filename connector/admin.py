"""Connector admin, plus the pieces every log admin shares (read-only base, redaction, badges).

Admin modules are the presentation layer over all three apps, so unlike domain code they may
import from `webhooks` (its services and inbox models) as well as `sync`.
"""
import json
import re

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.formats import number_format
from django.utils.html import format_html, format_html_join

from sync.exceptions import SyncError
from webhooks import actions
from webhooks.models import HullNotification, InboxStatus
from webhooks.status import status_check

from .forms import ACTION_FORM_ID, ConnectorForm
from .models import Connector
from .settings_io import public_base_url

REDACTED = "[redacted]"
REDACTED_KEYS = frozenset({"secret", "api_key", "hull_secret", "webhook_signing_key", "token", "password"})
# Same keys in text that is not valid JSON (e.g. a truncated body), as "key": "value" pairs.
REDACTED_PAIR = re.compile(
    r'("(?:%s)"\s*:\s*)"(?:[^"\\]|\\.)*"' % "|".join(sorted(REDACTED_KEYS)), re.IGNORECASE
)
MAX_DISPLAY_CHARS = 200_000
BADGE_COLORS = {"ok": "#1a7f37", "success": "#1a7f37", "warning": "#9a6700", "error": "#cf222e",
                "skip": "#6e7781", "unknown": "#6e7781", "info": "#0969da"}
BADGE = ('<span class="cio-badge cio-badge-{}" title="{}" style="display:inline-block;padding:1px 8px;'
         'border-radius:10px;color:#fff;background:{};font-weight:600;font-size:0.85em;white-space:nowrap">{}</span>')
LATEST_BATCHES = 5
MESSAGE_LEVELS = {"ok": messages.SUCCESS, "warning": messages.WARNING, "error": messages.ERROR}


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


def badge(level, text, title=""):
    """A colored pill; `level` picks the color (ok, warning, error, skip, info …)."""
    return format_html(BADGE, level, title, BADGE_COLORS.get(level, BADGE_COLORS["unknown"]), text)


def table_html(headers, rows, empty="None yet."):
    """A small read-only table for change pages; cells are already safe HTML or plain text."""
    if not rows:
        return format_html("<p>{}</p>", empty)
    head = format_html_join("", "<th>{}</th>", ((header,) for header in headers))
    body = format_html_join("", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),)
                                                for row in rows))
    return format_html('<table class="cio-table"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, body)


def change_link(obj, text=None):
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, obj if text is None else text)


def when_link(obj, moment):
    """A link to the row, labelled with its time on one line."""
    return change_link(obj, format_html('<span style="white-space:nowrap">{}</span>',
                                        moment.strftime("%Y-%m-%d %H:%M:%S")))


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """Log and inbox rows: searchable and viewable, never added, edited or deleted by hand.

    Subclasses declare `fields` or `fieldsets`; every field is read-only. Change permission stays
    so that admin actions can act on rows. Search fields use `__exact`: support pastes whole
    emails and ids, and exact matches use the column indexes on tables of millions of rows.
    """

    list_select_related = ("connector",)
    show_full_result_count = False

    def get_fieldsets(self, request, obj=None):
        """Support cannot open connectors, so they get the connector's name instead of a link that 403s."""
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.has_perm(f"{Connector._meta.app_label}.view_{Connector._meta.model_name}"):
            return fieldsets
        return [(name, {**options, "fields": ["connector_name" if field == "connector" else field
                                              for field in options["fields"]]})
                for name, options in fieldsets]

    def get_readonly_fields(self, request, obj=None):
        return flatten_fieldsets(self.get_fieldsets(request, obj))

    @admin.display(description="Connector")
    def connector_name(self, obj):
        return str(obj.connector)

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


def _status_message(connector, result):
    text = f"{connector.name}: status {result.status}"
    return f"{text} — {' '.join(result.messages)}" if result.messages else text


def _batch_users(row):
    """Users done / total of a batch row; the total is known once the extract has been read to the end."""
    done = number_format(row.progress_done, force_grouping=True)
    if row.status == InboxStatus.DONE:
        return f"{done} / {done}"
    if row.message_count > row.progress_done:
        return f"{done} / {number_format(row.message_count, force_grouping=True)}"
    return f"{done} / …"


@admin.register(Connector)
class ConnectorAdmin(admin.ModelAdmin):
    form = ConnectorForm
    list_display = ("name", "hull_id", "region", "status_badge", "status_checked_at")
    list_filter = ("region", "status")
    search_fields = ("name", "hull_id")
    readonly_fields = ("status_summary", "status_messages_list", "status_checked_at", "credentials_rejected_at",
                       "backfill_progress")
    actions = ["check_status", "detect_region", "rotate_webhook_token", "resync_users"]
    # Object actions offered as buttons on the change page: url name suffix → admin action.
    object_actions = {"check-status": "check_status", "detect-region": "detect_region",
                      "rotate-token": "rotate_webhook_token"}

    def get_fieldsets(self, request, obj=None):
        change = obj is not None
        status = [("Status", {"fields": list(self.readonly_fields)})] if change else []
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
            *status,
        ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.webhook_base_url = public_base_url(default=request.build_absolute_uri("/"))
        return form

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        custom = [
            path(f"<path:object_id>/{slug}/", self.admin_site.admin_view(self._object_action_view),
                 {"slug": slug}, name=f"{info[0]}_{info[1]}_{slug.replace('-', '_')}")
            for slug in self.object_actions
        ]
        return custom + super().get_urls()

    def _object_action_view(self, request, object_id, slug):
        """POST from a change-page button: run the admin action on that one connector."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("No such connector.")
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        action = getattr(self, self.object_actions[slug])
        action(request, self.get_queryset(request).filter(pk=obj.pk))
        return redirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        if self.has_change_permission(request):
            extra_context["connector_action_forms"] = [
                {"id": ACTION_FORM_ID.format(slug),
                 "url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{slug.replace('-', '_')}",
                                args=[object_id])}
                for slug in self.object_actions]
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        unpaused = change and form.credentials_changed and bool(form.initial_credentials_rejected_at)
        super().save_model(request, obj, form, change)
        if unpaused:
            self.message_user(request, "New Customer.io credentials saved: outgoing sync is no longer paused. "
                                       "Retry the failed Hull notifications to send what was held back.",
                              messages.WARNING)

    # --- actions ------------------------------------------------------------------------------

    @admin.action(description="Check status (Customer.io credentials, segments, webhooks, errors)",
                  permissions=["change"])
    def check_status(self, request, queryset):
        for connector in queryset:
            result = status_check(connector)
            self.message_user(request, _status_message(connector, result), MESSAGE_LEVELS[result.status])

    @admin.action(description="Detect the Customer.io region", permissions=["change"])
    def detect_region(self, request, queryset):
        for connector in queryset:
            try:
                result = actions.connector_region_detect(connector)
            except SyncError as err:
                self.message_user(request, f"{connector.name}: could not detect the region: {err}", messages.ERROR)
                continue
            region = Connector.Region(result.region).label
            verb = "changed to" if result.changed else "already"
            self.message_user(request, f"{connector.name}: region {verb} {region}.", messages.SUCCESS)

    @admin.action(description="Rotate the webhook token (new webhook URL)", permissions=["change"])
    def rotate_webhook_token(self, request, queryset):
        for connector in queryset:
            actions.connector_rotate_webhook_token(connector)
            # The URL itself stays on the connector page: messages travel in a (signed, readable) cookie.
            self.message_user(request, f"{connector.name}: webhook token rotated; the old URL no longer works. "
                                       "Copy the new webhook URL from the connector page into Customer.io now.",
                              messages.WARNING)

    @admin.action(description="Resync users (re-send every user with their next Hull update)",
                  permissions=["change"])
    def resync_users(self, request, queryset):
        for connector in queryset:
            count = actions.connector_users_resync(connector)
            self.message_user(request, f"{connector.name}: {count} users will be re-sent with their next Hull "
                                       "update. To re-send everyone now, use “Send to connector” (a batch) in Hull.",
                              messages.SUCCESS)

    # --- read-only displays -------------------------------------------------------------------

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.status, obj.get_status_display(), " · ".join(obj.status_messages or []))

    @admin.display(description="Status")
    def status_summary(self, obj):
        button = format_html('<button type="submit" class="button" form="{}" id="{}-button">Check status now'
                             '</button>', ACTION_FORM_ID.format("check-status"), ACTION_FORM_ID.format("check-status"))
        return format_html("{} {}", self.status_badge(obj), button)

    @admin.display(description="Status messages")
    def status_messages_list(self, obj):
        if not obj.status_messages:
            return "—"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((m,) for m in obj.status_messages)))

    @admin.display(description="Backfill (batch extracts)")
    def backfill_progress(self, obj):
        rows = (HullNotification.objects.filter(connector=obj, kind=HullNotification.Kind.BATCH)
                .order_by("-received_at", "-pk")[:LATEST_BATCHES])
        return table_html(
            ["Started", "Status", "Users done / total", "Detail"],
            [(when_link(row, row.received_at), row.get_status_display(),
              _batch_users(row), row.reason or "") for row in rows],
            empty="No batch extract received yet (Hull: “Send to connector”).")
