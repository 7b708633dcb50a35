"""Thin Celery tasks for the outgoing side: load, call a service, own the retry policy."""
import logging

from celery import shared_task

from connector.conf import setting
from connector.models import Connector

from .exceptions import SyncError
from .models import SyncState
from .services import WRITEBACK_BATCH, hull_writeback

logger = logging.getLogger(__name__)


def retry_countdown(retries):
    """Exponential backoff for task retries: 5 s, 10 s, 20 s … capped at 10 minutes."""
    return min(600.0, float(setting("TASK_RETRY_BASE", 5)) * (2 ** retries))


def retry_later(task, exc=None):
    """Schedule a retry with backoff; in-process (no broker) the stored row waits for the periodic sweep."""
    if not task.request.is_eager:
        raise task.retry(countdown=retry_countdown(task.request.retries), exc=exc)


@shared_task(bind=True, acks_late=True, max_retries=12)
def hull_writeback_task(self, connector_id):
    """Flush pending customerio/* traits of one connector to Hull; leaves them pending when Hull is down."""
    connector = Connector.objects.filter(pk=connector_id).first()
    if connector is None:
        return 0
    written = 0
    try:
        while True:
            batch = hull_writeback(connector)
            written += batch
            if batch < WRITEBACK_BATCH:
                return written
    except SyncError as err:
        logger.warning("Hull write-back for connector %s failed: %s", connector_id, err)
        if err.retryable:
            retry_later(self, err)
        return written


@shared_task(acks_late=True)
def hull_writeback_sweep():
    """Periodic: enqueue write-backs for every connector that still has pending traits."""
    connector_ids = set(SyncState.objects.filter(writeback_pending=True).values_list("connector_id", flat=True))
    for connector_id in connector_ids:
        hull_writeback_task.delay(connector_id)
    return len(connector_ids)
