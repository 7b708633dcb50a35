"""Enqueue a task once per burst: a mark in Redis says a run is already coming."""
import logging

from .ratelimit import redis_client

logger = logging.getLogger(__name__)


def enqueue_once(task, args, key, ttl, countdown):
    """Enqueue ``task(*args)`` unless the Redis mark ``key`` says a run is already coming.

    Returns True when this call set the mark and enqueued the run ``countdown`` seconds ahead: the
    callers of a burst share that run, whose code clears or refreshes the mark (it expires after
    ``ttl`` seconds if the run dies). Without Redis (single machine) every call runs the task now and
    returns False. If Redis or the broker fails, the mark is removed and the failure logged: the
    periodic sweep schedules the run instead.
    """
    client = redis_client()
    try:
        if client is None:
            task.delay(*args)
            return False
        if not client.set(key, 1, nx=True, ex=ttl):
            return False
        try:
            task.apply_async(tuple(args), countdown=countdown)
        except Exception:
            client.delete(key)
            raise
        return True
    except Exception:  # noqa: BLE001 - the stored rows are the source of truth; the sweep retries
        logger.warning("Could not schedule %s%s; the sweep will", task.name, tuple(args), exc_info=True)
        return False
