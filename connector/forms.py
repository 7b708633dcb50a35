from datetime import timedelta

from django import forms
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from .models import Connector, SeenValue
from .settings_io import SECRET_KEYS, SETTINGS_KEYS, WRITEBACK_PREFIXES, settings_problems, webhook_url

# A value last seen longer ago than this (or never) is flagged in the pickers.
SEEN_RECENTLY = timedelta(days=30)
NOT_SEEN = "(not seen recently)"
# Ids of the small POST forms the change page adds after the main form (templates/admin/connector/…).
ACTION_FORM_ID = "connector-action-{}"
# List field → (kind of SeenValue offered in its picker, what the picker calls them).
PICKERS = {
    "synchronized_segments": (SeenValue.Kind.SEGMENT, "segments"),
    "events_filter": (SeenValue.Kind.EVENT, "events"),
    "synchronized_attributes": (SeenValue.Kind.ATTRIBUTE, "attributes"),
}


def _lines(value):
    """Non-blank stripped lines of a string, or of each string of a list (a page rendered with a textarea
    may be posted after the picker appeared)."""
    items = value if isinstance(value, (list, tuple)) else [value or ""]
    return [line.strip() for item in items for line in str(item).splitlines() if line.strip()]


class LinesField(forms.Field):
    """A list of strings edited as a textarea, one item per line; blank lines are dropped."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 60})

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, (list, tuple)):
            return "\n".join(str(item) for item in value)
        return value

    def to_python(self, value):
        return _lines(value)


def picker_choices(seen, selected, now, exclude_prefixes=()):
    """(value, label) choices for a picker, sorted by label (pure).

    `seen` is [(value, label, last_seen_at)]. Segment names are shown with their id. Selected values
    that were never seen stay selectable; those and values not seen for SEEN_RECENTLY are flagged.
    """
    choices, known = [], set()
    for value, label, last_seen_at in seen:
        if value.startswith(exclude_prefixes) and value not in selected:
            continue
        text = f"{label} ({value})" if label and label != value else value
        if last_seen_at is None or now - last_seen_at > SEEN_RECENTLY:
            text = f"{text} {NOT_SEEN}"
        choices.append((value, text))
        known.add(value)
    choices += [(value, f"{value} {NOT_SEEN}") for value in selected if value not in known]
    return sorted(choices, key=lambda choice: (choice[1].casefold(), choice[0]))


class PickerWidget(FilteredSelectMultiple):
    """Django's filterable two-box multi-select, plus a textarea for values not seen in traffic yet."""

    def __init__(self, verbose_name, attrs=None, choices=()):
        super().__init__(verbose_name, is_stacked=False, attrs=attrs, choices=choices)

    def get_context(self, name, value, attrs):
        known = {str(choice) for choice, _ in self.choices}
        extra = [(item, f"{item} {NOT_SEEN}") for item in (value or []) if item not in known]
        if extra:
            self.choices = list(self.choices) + extra
        return super().get_context(name, value, attrs)

    def render(self, name, value, attrs=None, renderer=None):
        select = super().render(name, value, attrs, renderer)
        other_id = f"id_{name}_other"
        return format_html(
            '<div class="picker-wrap"><div class="picker">{}</div><div class="picker-other"><label for="{}">Other '
            "values, one per line (not seen in traffic yet):</label>"
            '<textarea name="{}_other" id="{}" rows="2" cols="60"></textarea></div></div>',
            select, other_id, name, other_id)

    def value_from_datadict(self, data, files, name):
        picked = data.getlist(name) if hasattr(data, "getlist") else data.get(name) or []
        if isinstance(picked, str):
            picked = [picked]
        return _lines(picked) + _lines(data.get(f"{name}_other", ""))

    def value_omitted_from_data(self, data, files, name):
        return False


class PickerField(LinesField):
    """A list of strings picked from what the connector's traffic showed (see PickerWidget)."""

    def __init__(self, verbose_name, choices, **kwargs):
        kwargs.setdefault("widget", PickerWidget(verbose_name, choices=choices))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return _lines(value)


class ActionButtonMixin:
    """Renders a button submitting one of the page's action forms after the widget."""

    def __init__(self, *args, action=None, **kwargs):
        self.action = action
        super().__init__(*args, **kwargs)

    def render(self, name, value, attrs=None, renderer=None):
        html = super().render(name, value, attrs, renderer)
        return format_html("{}{}", html, self.buttons())

    def buttons(self):
        if not self.action:
            return ""
        name, label, confirm = self.action
        onclick = format_html(' onclick="return confirm(\'{}\')"', confirm) if confirm else ""
        return format_html(' <button type="submit" class="button" form="{}" id="{}-button"{}>{}</button>',
                           ACTION_FORM_ID.format(name), ACTION_FORM_ID.format(name), onclick, label)


class RegionSelect(ActionButtonMixin, forms.Select):
    pass


class WebhookURLWidget(ActionButtonMixin, forms.TextInput):
    """The webhook URL, read-only, with a copy button (and a rotate button on saved connectors)."""

    def buttons(self):
        copy = format_html(
            ' <button type="button" class="button" data-copy-target="{}" id="copy-webhook-url">Copy</button>'
            ' <span class="copy-feedback" id="copy-webhook-url-feedback" aria-live="polite"></span>', "id_webhook_url")
        return format_html("{}{}", copy, super().buttons())


class SuggestInput(forms.TextInput):
    """A free-text input with browser suggestions (<datalist>)."""

    def __init__(self, attrs=None, suggestions=()):
        super().__init__(attrs)
        self.suggestions = list(suggestions)

    def render(self, name, value, attrs=None, renderer=None):
        if not self.suggestions:
            return super().render(name, value, attrs, renderer)
        list_id = f"id_{name}_suggestions"
        attrs = {**(attrs or {}), "list": list_id}
        options = format_html_join("", '<option value="{}">', ((item,) for item in self.suggestions))
        return format_html('{}<datalist id="{}">{}</datalist>', super().render(name, value, attrs, renderer),
                           list_id, options)


def _secret_help(model_help, is_set):
    if is_set:
        return f"{model_help} Currently set: leave empty to keep it, type a new value to replace it."
    return f"{model_help} Currently not set."


def _secret_field(label):
    return forms.CharField(label=label, required=False, widget=forms.PasswordInput(render_value=False))


REGION_ACTION = ("detect-region", "Detect region", "")
ROTATE_ACTION = ("rotate-token", "Rotate token",
                 "Rotate the webhook token? The current URL stops working at once: paste the new one into "
                 "Customer.io right after.")


class ConnectorForm(forms.ModelForm):
    """Connector settings; secrets are write-only and validated like `connector_settings import`."""

    hull_secret = _secret_field("Hull secret")
    clear_hull_secret = forms.BooleanField(required=False, label="Clear the Hull secret")
    api_key = _secret_field("API key")
    clear_api_key = forms.BooleanField(required=False, label="Clear the API key")
    webhook_signing_key = _secret_field("Webhook signing key")
    clear_webhook_signing_key = forms.BooleanField(required=False, label="Clear the signing key")
    synchronized_segments = LinesField(help_text="Whitelisted Hull segment ids, one per line.")
    events_filter = LinesField(help_text="Hull event names sent to Customer.io, one per line.")
    synchronized_attributes = LinesField(help_text="Hull attributes sent as Customer.io attributes, one per line.")
    webhook_url = forms.CharField(
        required=False, label="Webhook URL",
        widget=WebhookURLWidget(attrs={"readonly": "readonly", "size": 72}),
        help_text="Paste this into Customer.io: Data & Integrations → Reporting webhooks.",
    )
    # Set per request by the admin (PUBLIC_BASE_URL, else the request's host).
    webhook_base_url = ""

    class Meta:
        model = Connector
        fields = sorted(SETTINGS_KEYS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._saved_credentials = (self.instance.site_id, self.instance.api_key)
        self.initial_credentials_rejected_at = self.instance.credentials_rejected_at
        for name in SECRET_KEYS:
            # The stored plaintext must never reach a rendered page, not even as `initial`.
            self.initial.pop(name, None)
            model_help = Connector._meta.get_field(name).help_text
            self.fields[name].help_text = _secret_help(model_help, bool(getattr(self.instance, name)))
        self.fields["webhook_url"].initial = (
            webhook_url(self.instance, self.webhook_base_url) if self.instance.pk
            else "Shown once the connector is saved."
        )
        if self.instance.pk:
            self._add_pickers()
            self.fields["webhook_url"].widget.action = ROTATE_ACTION
            self.fields["region"].widget = RegionSelect(choices=self.fields["region"].choices, action=REGION_ACTION)
            self.fields["region"].help_text = ("Detect region asks Customer.io with the saved Site ID and API key "
                                               "(GET /api/v1/accounts/region).")

    def _add_pickers(self):
        """Pickers filled from the connector's traffic; a list nobody has seen values for stays free text."""
        seen = {}
        for kind, value, label, last_seen_at in (SeenValue.objects.filter(connector=self.instance)
                                                 .values_list("kind", "value", "label", "last_seen_at")):
            seen.setdefault(kind, []).append((value, label, last_seen_at))
        now = timezone.now()
        for name, (kind, verbose_name) in PICKERS.items():
            if not seen.get(kind):
                continue
            selected = _lines(getattr(self.instance, name))
            exclude = WRITEBACK_PREFIXES if kind == SeenValue.Kind.ATTRIBUTE else ()
            self.fields[name] = PickerField(
                verbose_name, picker_choices(seen[kind], selected, now, exclude), label=self.fields[name].label,
                help_text=(f"{Connector._meta.get_field(name).help_text} Choices come from the connector's traffic; "
                           f"“{NOT_SEEN}” marks values not seen for {SEEN_RECENTLY.days} days."))
        attributes = sorted(value for value, _, _ in seen.get(SeenValue.Kind.ATTRIBUTE, [])
                            if not value.startswith(WRITEBACK_PREFIXES))
        self.fields["user_id_mapping"].widget = SuggestInput(suggestions=attributes)

    def clean(self):
        cleaned_data = super().clean()
        for name in SECRET_KEYS:
            self._clean_secret(name)
        self._add_settings_problems()
        return cleaned_data

    def _clean_secret(self, name):
        new_value = self.cleaned_data.get(name, "")
        if self.cleaned_data.get(f"clear_{name}"):
            if new_value:
                self.add_error(name, "Type a new value or tick “clear”, not both.")
            self.cleaned_data[name] = ""
        elif not new_value:
            self.cleaned_data[name] = getattr(self.instance, name)

    def _add_settings_problems(self):
        data = {key: value for key, value in self.cleaned_data.items()
                if key in SETTINGS_KEYS and key not in SECRET_KEYS}
        for key, message in settings_problems(data):
            if key not in self.errors:
                self.add_error(key if key in self.fields else None, message)

    @property
    def credentials_changed(self):
        return (self.instance.site_id, self.instance.api_key) != self._saved_credentials

    def save(self, commit=True):
        """New Customer.io credentials lift a pause caused by a 401 (credentials_rejected_at)."""
        if self.instance.credentials_rejected_at and self.credentials_changed:
            self.instance.credentials_rejected_at = None
        return super().save(commit)
