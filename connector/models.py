import secrets
from urllib.parse import urlsplit

from django.db import connection, models

from .conf import setting
from .crypto import EncryptedTextField

TRACK_URLS = {"us": "https://track.customer.io", "eu": "https://track-eu.customer.io"}


def new_webhook_token():
    return secrets.token_urlsafe(24)


class ConnectorManager(models.Manager):
    # What accepting a Customer.io delivery reads of its connector; the other fields stay deferred.
    WEBHOOK_FIELDS = ("webhook_signing_key", "webhook_timestamp_tolerance", "forward_message_body")

    def for_webhook(self, webhook_token):
        """The connector owning a webhook URL, or None, with only what accepting a delivery needs.

        The hottest lookup of the service: one plain query (no per-request SQL compilation), and
        the two secrets it does not need are never decrypted; the other fields stay deferred.
        """
        names = ("id",) + self.WEBHOOK_FIELDS
        columns = ", ".join(f'"{self.model._meta.get_field(name).column}"' for name in names)
        with connection.cursor() as cursor:
            cursor.execute(f'SELECT {columns} FROM "{self.model._meta.db_table}" WHERE "webhook_token" = %s',
                           [webhook_token])
            row = cursor.fetchone()
        if row is None:
            return None
        fields = [self.model._meta.get_field(name) for name in names]
        values = [f.from_db_value(v, None, connection) if hasattr(f, "from_db_value") else f.to_python(v)
                  for f, v in zip(fields, row)]
        return self.model.from_db(connection.alias, list(names), values)


class Connector(models.Model):
    """One Hull connector ⇄ one Customer.io workspace, with the Hull manifest's settings."""

    objects = ConnectorManager()

    class Region(models.TextChoices):
        US = "us", "US (track.customer.io)"
        EU = "eu", "EU (track-eu.customer.io)"

    class Status(models.TextChoices):
        UNKNOWN = "unknown", "Not checked yet"
        OK = "ok", "OK"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    name = models.CharField(max_length=200, help_text="A name for people, e.g. the Hull organization and workspace.")
    hull_id = models.CharField(max_length=64, unique=True, help_text="Hull connector id (24 hex characters).")
    hull_organization = models.CharField(
        max_length=255, help_text="Hull organization host (abc.hullapp.io) or a full URL (http://127.0.0.1:9002)."
    )
    hull_secret = EncryptedTextField(blank=True, default="", help_text="Hull connector secret (write-only).")
    site_id = models.CharField(max_length=100, blank=True, default="", help_text="Customer.io Site ID.")
    api_key = EncryptedTextField(blank=True, default="", help_text="Customer.io Track API key (write-only).")
    region = models.CharField(max_length=2, choices=Region.choices, default=Region.US, help_text="Customer.io region.")
    webhook_signing_key = EncryptedTextField(
        blank=True, default="", help_text="Customer.io reporting webhook signing key (write-only)."
    )
    webhook_token = models.CharField(
        max_length=64, unique=True, default=new_webhook_token, help_text="Secret path token of the webhook URL."
    )
    webhook_timestamp_tolerance = models.PositiveIntegerField(
        default=0,
        help_text="Maximum age in seconds of X-CIO-Timestamp; 0 accepts any age (Customer.io retries for 7 days).",
    )
    forward_message_body = models.BooleanField(
        default=False, help_text="Forward message bodies (content) of Customer.io webhooks to Hull."
    )
    update_hull_traits = models.BooleanField(
        default=True, help_text="Write customerio/unsubscribed and last-activity traits from webhooks."
    )

    synchronized_segments = models.JSONField(default=list, blank=True, help_text="Whitelisted Hull segment ids.")
    enable_user_deletion = models.BooleanField(
        default=False, help_text="Delete people from Customer.io when they leave every whitelisted segment."
    )
    events_filter = models.JSONField(default=list, blank=True, help_text="Hull event names sent to Customer.io.")
    anonymous_events = models.BooleanField(
        default=False, help_text="Send whitelisted events of users without identifier as anonymous events."
    )
    user_id_mapping = models.CharField(
        max_length=255, default="external_id", help_text="Hull attribute sent as the Customer.io id."
    )
    synchronized_attributes = models.JSONField(
        default=list, blank=True, help_text="Hull attributes sent as Customer.io attributes."
    )
    max_attribute_name_length = models.PositiveIntegerField(default=150, help_text="Bytes.")
    max_attribute_value_length = models.PositiveIntegerField(default=1000, help_text="Bytes.")
    max_identifier_value_length = models.PositiveIntegerField(default=150, help_text="Bytes.")
    rate_limit_per_second = models.PositiveIntegerField(
        default=100, help_text="Customer.io requests per second for this workspace, shared by all workers."
    )
    retention_days = models.PositiveIntegerField(default=30, help_text="Days to keep sync logs and inbox rows.")

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.UNKNOWN, db_index=True,
                              help_text="Result of the last status check.")
    status_messages = models.JSONField(default=list, blank=True, help_text="Messages of the last status check.")
    status_checked_at = models.DateTimeField(null=True, blank=True, help_text="When the status was last checked.")
    credentials_rejected_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when Customer.io answered 401; outgoing sync pauses until cleared."
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When this connector was created.")
    updated_at = models.DateTimeField(auto_now=True, help_text="When this connector was last changed.")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.hull_id})"

    @property
    def hull_base_url(self):
        org = self.hull_organization.strip().rstrip("/")
        return org if "://" in org else f"https://{org}"

    @property
    def firehose_url(self):
        override = setting("HULL_FIREHOSE_URL", "")
        if override:
            return override.rstrip("/")
        host = urlsplit(self.hull_base_url).hostname or ""
        domain = host.split(".", 1)[1] if "." in host else host
        return f"https://firehose.{domain}"

    @property
    def track_url(self):
        return (setting("CUSTOMERIO_TRACK_URL", "") or TRACK_URLS[self.region]).rstrip("/")

    @property
    def has_customerio_credentials(self):
        return bool(self.site_id and self.api_key)


class SeenValue(models.Model):
    """A segment, event name or user attribute seen in a connector's traffic, offered as a picker choice."""

    class Kind(models.TextChoices):
        SEGMENT = "segment", "Segment"
        EVENT = "event", "Event name"
        ATTRIBUTE = "attribute", "User attribute"

    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="seen_values",
                                  help_text="Connector whose traffic contained the value.")
    kind = models.CharField(max_length=10, choices=Kind.choices, help_text="What the value is.")
    value = models.CharField(max_length=255, help_text="Segment id, event name or flat attribute name.")
    label = models.CharField(max_length=255, blank=True, default="", help_text="Segment name, when known.")
    last_seen_at = models.DateTimeField(db_index=True, help_text="When it was last seen in a notification.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connector", "kind", "value"], name="seenvalue_unique")]
        ordering = ["kind", "label", "value"]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.label or self.value}"
