"""Thin Celery tasks for the inbox: take ids, call a service, own the retry policy."""
from celery import shared_task

from sync.tasks import retry_later

from . import batch, services


@shared_task(bind=True, acks_late=True, max_retries=8)
def hull_notification_process(self, row_id):
    if services.notification_process(row_id):
        retry_later(self)


@shared_task(acks_late=True)
def inbox_sweep():
    """Periodic: re-enqueue rows left pending (broker was down, worker died) and failed rows now due."""
    return services.inbox_sweep()


@shared_task(bind=True, acks_late=True, max_retries=8)
def customerio_webhooks_forward(self, connector_id):
    if services.webhooks_forward_for(connector_id):
        retry_later(self)


@shared_task(bind=True, acks_late=True, max_retries=8)
def hull_batch_process(self, row_id):
    if batch.batch_process(row_id):
        retry_later(self)


@shared_task(acks_late=True)
def connectors_status_check():
    """Periodic (every 30 minutes): the status check of every connector, pushed to Hull."""
    from connector.models import Connector

    from .status import status_check

    checked = 0
    for connector in Connector.objects.all():
        status_check(connector)
        checked += 1
    return checked
