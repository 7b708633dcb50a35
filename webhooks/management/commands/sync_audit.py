from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from webhooks.audit import audit_lines, audit_total, inbox_audit


class Command(BaseCommand):
    help = ("Count the deliveries of both inboxes per state (pending, done, failed-retryable, failed-permanent, "
            "ignored, rejected) for each connector, with the age of the oldest pending one.")

    def add_arguments(self, parser):
        parser.add_argument("--connector", metavar="HULL_ID", help="Only this connector (its Hull connector id).")

    def handle(self, *args, **options):
        hull_id = options.get("connector")
        audits = inbox_audit(hull_id)
        if hull_id and not audits:
            raise CommandError(f'No connector with hull_id "{hull_id}".')
        if not audits:
            self.stdout.write("No connectors.")
            return
        now = timezone.now()
        for audit in audits:
            self.stdout.write("\n".join(audit_lines(audit, now)) + "\n")
        if len(audits) > 1:
            self.stdout.write("\n".join(audit_lines(audit_total(audits), now)))
