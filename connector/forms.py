from django import forms

from .models import Connector
from .settings_io import SECRET_KEYS, SETTINGS_KEYS, settings_problems, webhook_url


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
        if isinstance(value, (list, tuple)):
            return [str(item).strip() for item in value if str(item).strip()]
        return [line.strip() for line in (value or "").splitlines() if line.strip()]


def _secret_help(model_help, is_set):
    if is_set:
        return f"{model_help} Currently set: leave empty to keep it, type a new value to replace it."
    return f"{model_help} Currently not set."


def _secret_field(label):
    return forms.CharField(label=label, required=False, widget=forms.PasswordInput(render_value=False))


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
        widget=forms.TextInput(attrs={"readonly": "readonly", "size": 90}),
        help_text="Paste this into Customer.io: Data & Integrations → Reporting webhooks.",
    )
    # Set per request by the admin (PUBLIC_BASE_URL, else the request's host).
    webhook_base_url = ""

    class Meta:
        model = Connector
        fields = sorted(SETTINGS_KEYS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in SECRET_KEYS:
            # The stored plaintext must never reach a rendered page, not even as `initial`.
            self.initial.pop(name, None)
            model_help = Connector._meta.get_field(name).help_text
            self.fields[name].help_text = _secret_help(model_help, bool(getattr(self.instance, name)))
        self.fields["webhook_url"].initial = (
            webhook_url(self.instance, self.webhook_base_url) if self.instance.pk
            else "Shown once the connector is saved."
        )

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
