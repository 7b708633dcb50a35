from django.db import models

from connector.models import Connector

# Both tables take a write for every user synced, so they carry only the indexes that queries and
# admin searches use. Text columns get plain b-tree indexes (Meta.indexes), not db_index=True, which
# on PostgreSQL adds a second, pattern-matching index that exact searches never use; the connector
# foreign key is served by the composite indexes that start with it.


class SyncState(models.Model):
    """What this connector knows about one Hull user in one Customer.io workspace."""

    class Outcome(models.TextChoices):
        INSERT = "insert", "Inserted"
        UPDATE = "update", "Updated"
        EVENTS = "events", "Events only (attributes unchanged)"
        DELETE = "delete", "Deleted"
        SKIP = "skip", "Skipped"
        ERROR = "error", "Error"

    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="sync_states", db_index=False,
                                  help_text="The connector this state belongs to.")
    hull_user_id = models.CharField(max_length=64, help_text="Hull user id.")
    email = models.CharField(max_length=320, blank=True, default="", help_text="Last known email.")
    external_id = models.CharField(max_length=255, blank=True, default="", help_text="Last known Hull external_id.")
    customerio_id = models.CharField(max_length=255, blank=True, default="",
                                     help_text="Identifier of the person in Customer.io (value of user_id_mapping).")
    cio_id = models.CharField(max_length=64, blank=True, default="",
                              help_text="Customer.io internal cio_id, learnt from reporting webhooks.")
    payload_hash = models.CharField(max_length=64, blank=True, default="", help_text="Hash of the attributes last sent.")
    last_payload = models.JSONField(default=dict, blank=True, help_text="Attributes last sent to Customer.io.")
    customerio_created_at = models.BigIntegerField(null=True, blank=True,
                                                   help_text="created_at (unix seconds) sent to Customer.io.")
    synced_at = models.DateTimeField(null=True, blank=True, help_text="Last successful identify.")
    deleted_at = models.DateTimeField(null=True, blank=True, help_text="When the person was deleted in Customer.io.")
    last_indexed_at = models.DateTimeField(null=True, blank=True,
                                           help_text="Hull indexed_at of the newest message processed.")
    last_outcome = models.CharField(max_length=10, choices=Outcome.choices, blank=True, default="",
                                    help_text="Last decision taken for this user.")
    last_reason = models.TextField(blank=True, default="", help_text="Why, for skips and errors.")
    writeback_pending = models.BooleanField(default=False, help_text="customerio/* traits still to write to Hull.")
    writeback_seq = models.PositiveIntegerField(default=0, help_text="Bumped at every change of written-back traits.")
    updated_at = models.DateTimeField(auto_now=True, db_index=True, help_text="Last change of this row.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connector", "hull_user_id"], name="syncstate_connector_user")]
        indexes = [
            models.Index(fields=["hull_user_id"], name="syncstate_hull_user"),
            models.Index(fields=["email"], name="syncstate_email"),
            models.Index(fields=["external_id"], name="syncstate_external_id"),
            models.Index(fields=["customerio_id"], name="syncstate_customerio_id"),
            models.Index(fields=["cio_id"], name="syncstate_cio_id"),
            models.Index(fields=["last_outcome"], name="syncstate_last_outcome"),
            models.Index(fields=["connector", "writeback_pending"], name="syncstate_writeback",
                         condition=models.Q(writeback_pending=True)),
        ]

    def __str__(self):
        return self.email or self.hull_user_id

    @property
    def exists_in_customerio(self):
        return bool(self.customerio_id) and self.deleted_at is None


class SyncLog(models.Model):
    """One decision about one user or event, named like Hull's logs (outgoing.user.success …)."""

    class Direction(models.TextChoices):
        OUTGOING = "outgoing", "Outgoing (Hull → Customer.io)"
        INCOMING = "incoming", "Incoming (Customer.io → Hull)"

    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="sync_logs", db_index=False,
                                  help_text="The connector that logged this.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, help_text="When it happened.")
    action = models.CharField(max_length=40, help_text="outgoing.user.success, incoming.event.error …")
    direction = models.CharField(max_length=10, choices=Direction.choices, help_text="Data flow.")
    outcome = models.CharField(max_length=10, help_text="success, skip, error or deletion.")
    hull_user_id = models.CharField(max_length=64, blank=True, default="", help_text="Hull user id.")
    email = models.CharField(max_length=320, blank=True, default="", help_text="User email.")
    external_id = models.CharField(max_length=255, blank=True, default="", help_text="Hull external_id.")
    customerio_id = models.CharField(max_length=255, blank=True, default="", help_text="Customer.io identifier.")
    event_id = models.CharField(max_length=100, blank=True, default="",
                                help_text="Hull or Customer.io event id, for event rows.")
    reason = models.TextField(blank=True, default="", help_text="Human reason for skips and errors.")
    data = models.JSONField(default=dict, blank=True, help_text="What was sent or received (no secrets).")
    http_status = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Status of the API call.")
    error = models.TextField(blank=True, default="", help_text="Error detail.")
    duration_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time of the API call.")
    source = models.CharField(max_length=64, blank=True, default="",
                              help_text="Inbox row that caused this, e.g. notification:12 or webhook:34.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["connector", "direction", "outcome", "created_at"], name="synclog_filter"),
            models.Index(fields=["action"], name="synclog_action"),
            models.Index(fields=["hull_user_id"], name="synclog_hull_user"),
            models.Index(fields=["email"], name="synclog_email"),
            models.Index(fields=["external_id"], name="synclog_external_id"),
            models.Index(fields=["customerio_id"], name="synclog_customerio_id"),
            models.Index(fields=["event_id"], name="synclog_event_id"),
            models.Index(fields=["source"], name="synclog_source"),
        ]

    def __str__(self):
        return f"{self.action} {self.email or self.hull_user_id}"
