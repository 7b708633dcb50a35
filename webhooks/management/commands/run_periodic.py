import logging
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from connector.celery import app
from connector.conf import setting

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = ("Run the Celery beat schedule in this process (single-machine mode without a broker): "
            "sweeps, retries, write-backs, status checks, retention.")

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run every periodic task once and exit.")

    def handle(self, *args, **options):
        if setting("CELERY_BROKER_URL", "") and not options["once"]:
            self.stdout.write("CELERY_BROKER_URL is set: run `celery -A connector beat` instead.")
            return
        app.loader.import_default_modules()
        schedule = settings.CELERY_BEAT_SCHEDULE
        next_run = {name: 0.0 for name in schedule}
        while True:
            now = time.monotonic()
            for name, entry in schedule.items():
                if options["once"] or now >= next_run[name]:
                    self._run(entry["task"])
                    next_run[name] = now + float(entry["schedule"])
            if options["once"]:
                return
            time.sleep(1)

    @staticmethod
    def _run(task_name):
        try:
            app.tasks[task_name].apply()
        except Exception:  # noqa: BLE001 - one failing periodic task must not stop the others
            logger.exception("periodic task %s failed", task_name)
