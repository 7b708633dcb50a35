"""Thin Celery tasks for the outgoing side: load, call a service, own the retry policy."""
import logging
import uuid
from contextlib import contextmanager

from celery import shared_task

from connector.conf import setting
from connector.models import Connector

from .exceptions import SyncError
from .models import SyncState
from .ratelimit import redis_client
from .services import WRITEBACK_BATCH, hull_writeback

logger = logging.getLogger(__name__)


WRITEBACK_LOCK_SECONDS = 300


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
    with writeback_run(connector_id) as running_alone:
        if not running_alone:
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


@contextmanager
def writeback_run(connector_id):
    """Yields True when no other write-back of this connector is running (a Redis lock across workers).

    A second run would read the same pending rows and send their traits twice; it stops instead, and
    the running one loops until nothing is pending (the periodic sweep picks up any late arrival).
    """
    client = redis_client()
    key = f"cio:writeback-running:{connector_id}"
    if client is None:
        yield True
        return
    run_id = uuid.uuid4().hex
    acquired = client.set(key, run_id, nx=True, ex=WRITEBACK_LOCK_SECONDS)
    try:
        yield bool(acquired)
    finally:
        if acquired and client.get(key) == run_id.encode():
            client.delete(key)


@shared_task(acks_late=True)
def hull_writeback_sweep():
    """Periodic: enqueue write-backs for every connector that still has pending traits."""
    connector_ids = set(SyncState.objects.filter(writeback_pending=True).values_list("connector_id", flat=True))
    for connector_id in connector_ids:
        hull_writeback_task.delay(connector_id)
    return len(connector_ids)
