from django.db import models

from connector.models import Connector


class InboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed (will retry)"
    FAILED_PERMANENT = "failed_permanent", "Failed (permanent)"
    IGNORED = "ignored", "Ignored"
    REJECTED = "rejected", "Rejected (bad signature)"


class InboxRow(models.Model):
    """A delivery stored before it is processed; support reads these rows, not server logs.

    Every index costs each insert on the hot path, so there are only those that queries and admin
    filters use; text columns get plain b-tree indexes (``Meta.indexes``), not ``db_index=True``,
    which on PostgreSQL adds a second, pattern-matching index that exact searches never use.
    """

    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="+",
                                  help_text="Connector the delivery is for.")
    body = models.TextField(help_text="Raw request body as received.")
    status = models.CharField(max_length=20, choices=InboxStatus.choices, default=InboxStatus.PENDING,
                              help_text="Where processing stands.")
    reason = models.TextField(blank=True, default="", help_text="Why it failed or was ignored.")
    attempts = models.PositiveIntegerField(default=0, help_text="Processing attempts so far.")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True, help_text="When it arrived.")
    processed_at = models.DateTimeField(null=True, blank=True, help_text="When processing finished.")
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True,
                                           help_text="When a failed row is retried next.")

    class Meta:
        abstract = True


class HullNotification(InboxRow):
    """A smart-notifier notification or a batch extract request from Hull."""

    class Kind(models.TextChoices):
        NOTIFICATION = "notification", "Smart-notifier notification"
        BATCH = "batch", "Batch extract"

    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.NOTIFICATION,
                            help_text="Smart-notifier notification or batch extract.")
    notification_id = models.CharField(max_length=100, help_text="Hull notification_id.")
    channel = models.CharField(max_length=40, default="user:update", help_text="Hull channel.")
    message_count = models.PositiveIntegerField(default=0, help_text="Messages (users) in the notification.")
    progress_done = models.PositiveIntegerField(default=0, help_text="Users processed so far (batch extracts).")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connector", "notification_id"], name="hullnotification_unique"),
        ]
        indexes = [
            models.Index(fields=["status", "received_at"], name="hullnotification_pending"),
            models.Index(fields=["kind"], name="hullnotification_kind"),
            models.Index(fields=["notification_id"], name="hullnotification_nid"),
        ]
        ordering = ["-received_at", "-id"]

    def __str__(self):
        return f"{self.kind} {self.notification_id}"


class CustomerIOWebhook(InboxRow):
    """One reporting webhook delivery from Customer.io."""

    event_id = models.CharField(max_length=100, blank=True, default="",
                                help_text="Customer.io event_id (de-duplication key).")
    object_type = models.CharField(max_length=40, blank=True, default="",
                                   help_text="Channel: email, sms, push, in_app, customer … (legacy: email).")
    metric = models.CharField(max_length=60, blank=True, default="",
                              help_text="opened, clicked, … (legacy: the event_type).")
    event_name = models.CharField(max_length=100, blank=True, default="", help_text="Hull event name.")
    email = models.CharField(max_length=320, blank=True, default="", help_text="Recipient email.")
    customer_id = models.CharField(max_length=255, blank=True, default="", help_text="Customer.io person id.")
    hull_user_id = models.CharField(max_length=64, blank=True, default="",
                                    help_text="Hull user the event went to, when known.")
    signature_valid = models.BooleanField(null=True, db_index=True, help_text="Signature check: passed, failed, or not required.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connector", "event_id"], name="customeriowebhook_unique",
                                    condition=~models.Q(status="rejected") & ~models.Q(event_id="")),
        ]
        indexes = [
            models.Index(fields=["status", "received_at"], name="customeriowebhook_pending"),
            models.Index(fields=["event_id"], name="customeriowebhook_event"),
            models.Index(fields=["object_type"], name="customeriowebhook_type"),
            models.Index(fields=["metric"], name="customeriowebhook_metric"),
            models.Index(fields=["email"], name="customeriowebhook_email"),
            models.Index(fields=["customer_id"], name="customeriowebhook_customer"),
            models.Index(fields=["hull_user_id"], name="customeriowebhook_hull_user"),
        ]
        ordering = ["-received_at", "-id"]

    def __str__(self):
        return f"{self.event_name or self.metric} {self.event_id}"
