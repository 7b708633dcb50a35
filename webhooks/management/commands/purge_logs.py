from django.core.management.base import BaseCommand

from webhooks.retention import logs_purge


class Command(BaseCommand):
    help = ("Delete sync logs and finished inbox rows (Hull notifications, Customer.io webhooks) older than each "
            "connector's retention_days. Rows still pending or retrying are kept.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")

    def handle(self, *args, **options):
        totals = logs_purge(dry_run=options["dry_run"])
        verb = "would delete" if options["dry_run"] else "deleted"
        for name, count in totals.items():
            self.stdout.write(f"{name}: {verb} {count}")
