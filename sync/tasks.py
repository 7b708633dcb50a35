"""Thin Celery tasks for the outgoing side: load, call a service, own the retry policy."""
import logging

from celery import shared_task

from connector.conf import setting
from connector.models import Connector

from .exceptions import SyncError
from .models import SyncState
from .ratelimit import redis_client
from .scheduling import enqueue_once
from .services import WRITEBACK_BATCH, hull_writeback

logger = logging.getLogger(__name__)


WRITEBACK_KEY = "cio:writeback"
# How long the "scheduled or running" mark lives without being refreshed: past it, a run that died
# no longer blocks the periodic sweep from scheduling the next one.
WRITEBACK_KEY_SECONDS = 300
# Delay of a scheduled run: the traits of the notifications processed meanwhile share its batches.
WRITEBACK_DELAY = 0.5
# Batches (of WRITEBACK_BATCH users) one run writes before it hands its worker back: a run that
# drained a growing backlog in one go kept that worker from syncing notifications meanwhile.
WRITEBACK_BATCHES_PER_RUN = 4


def retry_countdown(retries):
    """Exponential backoff for task retries: 5 s, 10 s, 20 s … capped at 10 minutes."""
    return min(600.0, float(setting("TASK_RETRY_BASE", 5)) * (2 ** retries))


def retry_later(task, exc=None):
    """Schedule a retry with backoff; in-process (no broker) the stored row waits for the periodic sweep."""
    if not task.request.is_eager:
        raise task.retry(countdown=retry_countdown(task.request.retries), exc=exc)


def _writeback_key(connector_id):
    return f"{WRITEBACK_KEY}:{connector_id}"


def writeback_schedule(connector_id, delay=WRITEBACK_DELAY):
    """Make sure one write-back run of this connector is coming or running; bursts share it.

    With Redis, a key marks "a run is scheduled or running" and only the caller that sets it
    enqueues the run, slightly delayed, so the traits of many notifications travel in full firehose
    batches and two runs never send the same pending rows. The run refreshes the key while it works
    and, once it has deleted it, looks again for rows that arrived meanwhile. Without Redis (tasks
    in-process) the run happens now. A broker failure is logged: the periodic sweep schedules again.
    """
    enqueue_once(hull_writeback_task, (connector_id,), _writeback_key(connector_id), WRITEBACK_KEY_SECONDS, delay)


def _release(client, key):
    if client is not None:
        client.delete(key)


@shared_task(bind=True, acks_late=True, max_retries=12)
def hull_writeback_task(self, connector_id):
    """Write pending customerio/* traits of one connector to Hull; leaves them pending when Hull is down.

    With a broker, a run writes at most WRITEBACK_BATCHES_PER_RUN batches, then queues the next
    run behind the notifications already waiting; in-process it writes everything now.
    """
    client = redis_client()
    key = _writeback_key(connector_id)
    connector = Connector.objects.filter(pk=connector_id).first()
    written, batches, drained, failed = 0, 0, False, False
    try:
        while connector is not None and (client is None or batches < WRITEBACK_BATCHES_PER_RUN):
            if client is not None:
                client.expire(key, WRITEBACK_KEY_SECONDS)
            batch = hull_writeback(connector)
            written, batches = written + batch, batches + 1
            if batch < WRITEBACK_BATCH:
                drained = True
                break
    except SyncError as err:
        logger.warning("Hull write-back for connector %s failed: %s", connector_id, err)
        failed = True
        if err.retryable and not self.request.is_eager:
            # The retry inherits the key: no other run starts before it.
            raise self.retry(countdown=retry_countdown(self.request.retries), exc=err) from err
    except Exception:
        _release(client, key)
        raise
    _release(client, key)
    if connector is not None and client is not None and not failed:  # after a failure, the sweep retries
        if not drained:
            writeback_schedule(connector_id, delay=0)
        elif SyncState.objects.filter(connector_id=connector_id, writeback_pending=True).exists():
            writeback_schedule(connector_id)
    return written


@shared_task(acks_late=True)
def hull_writeback_sweep():
    """Periodic: enqueue write-backs for every connector that still has pending traits."""
    connector_ids = set(SyncState.objects.filter(writeback_pending=True).values_list("connector_id", flat=True))
    for connector_id in connector_ids:
        writeback_schedule(connector_id)
    return len(connector_ids)
