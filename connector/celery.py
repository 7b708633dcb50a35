import os

from celery import Celery
from celery.signals import task_prerun, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connector.settings")

app = Celery("connector")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery's Django fixup closes the database connection around every task unless this is set: keep
# connections for many tasks (Django's CONN_MAX_AGE still applies), saving a PostgreSQL login per task.
app.conf.CELERY_DB_REUSE_MAX = 1000
app.autodiscover_tasks()


@task_prerun.connect
def database_connections_refresh(task=None, **kwargs):
    """Drop connections that broke or outlived CONN_MAX_AGE before each task, as Django does per request.

    Not for tasks run in-process (eager): they share the caller's connection and transaction.
    """
    from django.db import close_old_connections

    if task is not None and getattr(task.request, "is_eager", False):
        return
    close_old_connections()


@worker_process_init.connect
def heap_freeze(**kwargs):
    """A pool process starts with Django and the tasks loaded: keep those objects out of the collector's
    full passes (gc.freeze), which otherwise walk them again and again while large payloads churn."""
    import gc

    gc.freeze()
