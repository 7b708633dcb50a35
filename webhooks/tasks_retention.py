"""Periodic retention task (beat, daily): thin wrapper around webhooks.retention."""
from celery import shared_task

from . import retention


@shared_task(acks_late=True)
def logs_purge():
    """Delete sync logs and finished inbox rows older than each connector's retention_days."""
    return retention.logs_purge()
