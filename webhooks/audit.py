"""Accounting of the two inboxes: how many deliveries are in each state, per connector.

Every accepted delivery is one inbox row, and every row is in exactly one state. The audit counts
them per connector and inbox, gives the age of the oldest pending row (the status check warns past
30 minutes), and flags rows that break the bookkeeping: a failed, ignored or rejected row without a
reason, or a status outside the known states.
"""
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Count, Min, Q
from django.utils import timezone

from connector.models import Connector

from .models import CustomerIOWebhook, HullNotification, InboxStatus

STATES = (
    ("pending", InboxStatus.PENDING),
    ("done", InboxStatus.DONE),
    ("failed-retryable", InboxStatus.FAILED),
    ("failed-permanent", InboxStatus.FAILED_PERMANENT),
    ("ignored", InboxStatus.IGNORED),
    ("rejected", InboxStatus.REJECTED),
)
STATE_LABELS = tuple(label for label, _ in STATES)
NEEDS_REASON = (InboxStatus.FAILED, InboxStatus.FAILED_PERMANENT, InboxStatus.IGNORED, InboxStatus.REJECTED)
INBOXES = (("hull notifications", HullNotification), ("customerio webhooks", CustomerIOWebhook))


@dataclass
class InboxCounts:
    """One inbox of one connector (or of all connectors)."""

    inbox: str
    counts: dict = field(default_factory=lambda: dict.fromkeys(STATE_LABELS, 0))
    oldest_pending_at: object = None
    without_reason: int = 0
    unknown_status: int = 0
    failed_awaiting_fix: int = 0

    @property
    def total(self):
        return sum(self.counts.values()) + self.unknown_status

    @property
    def failed(self):
        return self.counts["failed-retryable"] + self.counts["failed-permanent"]

    @property
    def consistent(self):
        """Every row in exactly one known state, with a reason where one is owed."""
        return not self.unknown_status and not self.without_reason

    def add(self, other):
        for label in STATE_LABELS:
            self.counts[label] += other.counts[label]
        self.without_reason += other.without_reason
        self.unknown_status += other.unknown_status
        self.failed_awaiting_fix += other.failed_awaiting_fix
        if other.oldest_pending_at and (not self.oldest_pending_at or other.oldest_pending_at < self.oldest_pending_at):
            self.oldest_pending_at = other.oldest_pending_at


@dataclass
class ConnectorAudit:
    """Both inboxes of one connector; `connector` is None for the all-connectors total."""

    connector: Connector | None
    inboxes: list

    @property
    def oldest_pending_at(self):
        moments = [inbox.oldest_pending_at for inbox in self.inboxes if inbox.oldest_pending_at]
        return min(moments) if moments else None

    def inbox(self, name):
        return next(inbox for inbox in self.inboxes if inbox.inbox == name)


def _inbox_counts(name, model, connector_ids):
    """{connector_id: InboxCounts} for one inbox model, in two aggregate queries."""
    by_connector = {pk: InboxCounts(name) for pk in connector_ids}
    label_of = {status: label for label, status in STATES}
    rows = model.objects.filter(connector_id__in=connector_ids)
    for row in rows.values("connector_id", "status").annotate(n=Count("id")).order_by():
        counts = by_connector[row["connector_id"]]
        if row["status"] in label_of:
            counts.counts[label_of[row["status"]]] += row["n"]
        else:
            counts.unknown_status += row["n"]
    extra = rows.values("connector_id").annotate(
        oldest=Min("received_at", filter=Q(status=InboxStatus.PENDING)),
        without_reason=Count("id", filter=Q(status__in=NEEDS_REASON, reason="")),
        awaiting_fix=Count("id", filter=Q(status=InboxStatus.FAILED, next_attempt_at__isnull=True)),
    ).order_by()
    for row in extra:
        counts = by_connector[row["connector_id"]]
        counts.oldest_pending_at = row["oldest"]
        counts.without_reason = row["without_reason"]
        counts.failed_awaiting_fix = row["awaiting_fix"]
    return by_connector


def inbox_audit(hull_id=None):
    """One ConnectorAudit per connector (only `hull_id`'s when given), in connector order."""
    connectors = Connector.objects.order_by("name", "pk")
    if hull_id is not None:
        connectors = connectors.filter(hull_id=hull_id)
    connectors = list(connectors)
    ids = [c.pk for c in connectors]
    per_model = [_inbox_counts(name, model, ids) for name, model in INBOXES]
    return [ConnectorAudit(c, [counts[c.pk] for counts in per_model]) for c in connectors]


def audit_total(audits):
    """The sum of several ConnectorAudits (connector None)."""
    inboxes = [InboxCounts(name) for name, _ in INBOXES]
    for audit in audits:
        for total, inbox in zip(inboxes, audit.inboxes):
            total.add(inbox)
    return ConnectorAudit(None, inboxes)


def age_text(moment, now=None):
    """'none' or a short age such as '3m 05s' / '2h 10m' / '4d 1h'."""
    if moment is None:
        return "none"
    seconds = max(0, int(((now or timezone.now()) - moment) / timedelta(seconds=1)))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s"


def audit_lines(audit, now=None):
    """The printed table of one ConnectorAudit."""
    title = "All connectors" if audit.connector is None else f"{audit.connector.name} ({audit.connector.hull_id})"
    headers = ("inbox", *STATE_LABELS, "total")
    rows = [(inbox.inbox, *(str(inbox.counts[label]) for label in STATE_LABELS), str(inbox.total))
            for inbox in audit.inboxes]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    lines = [title]
    for cells in (headers, *rows):
        lines.append("  " + "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                                      for i, (cell, w) in enumerate(zip(cells, widths))))
    oldest = audit.oldest_pending_at
    lines.append(f"  oldest pending: {age_text(oldest, now)}"
                 + (f" (received {oldest.isoformat(timespec='seconds')})" if oldest else ""))
    for inbox in audit.inboxes:
        if inbox.failed_awaiting_fix:
            lines.append(f"  {inbox.inbox}: {inbox.failed_awaiting_fix} failed row(s) wait for a fix "
                         "(no next attempt); retry them from admin once fixed")
        if inbox.without_reason:
            lines.append(f"  WARNING {inbox.inbox}: {inbox.without_reason} failed/ignored/rejected row(s) "
                         "have no reason")
        if inbox.unknown_status:
            lines.append(f"  WARNING {inbox.inbox}: {inbox.unknown_status} row(s) in an unknown state")
    return lines
