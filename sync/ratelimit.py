"""Per-workspace request pacing shared by every worker process.

A generic cell rate algorithm: each request reserves the next free slot (slots are 1/rate
seconds apart) and sleeps until it. With Redis the reservation is one atomic script on the
server clock, so all processes share the pace; without Redis a process-local lock does.
"""
import threading
import time

import redis

from connector.conf import setting

_RESERVE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
local start = math.max(tat, now)
redis.call('SET', KEYS[1], start + interval, 'PX', math.floor((start + interval - now) / 1000) + 1000)
return start - now
"""


class LocalRateLimiter:
    """In-process pacing for the single-machine mode (tasks run in the web process)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._next = {}

    def acquire(self, key, rate):
        interval = 1.0 / rate
        with self._lock:
            now = time.monotonic()
            start = max(self._next.get(key, now), now)
            self._next[key] = start + interval
        if start > now:
            time.sleep(start - now)


class RedisRateLimiter:
    """Pacing shared through Redis by all workers of all machines."""

    def __init__(self, client):
        self._client = client
        self._script = self._client.register_script(_RESERVE)

    def acquire(self, key, rate):
        interval_us = int(1_000_000 / rate)
        wait_us = int(self._script(keys=[f"cio:pace:{key}"], args=[interval_us]))
        if wait_us > 0:
            time.sleep(wait_us / 1_000_000)


_shared = {}
_shared_lock = threading.Lock()


def redis_client():
    """The process-wide Redis client shared by all workers' coordination (RATE_LIMIT_REDIS_URL or the
    broker when it is Redis), or None in single-machine mode."""
    url = setting("RATE_LIMIT_REDIS_URL", "") or setting("CELERY_BROKER_URL", "")
    if not url.startswith(("redis://", "rediss://")):
        return None
    with _shared_lock:
        if url not in _shared:
            _shared[url] = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=2)
        return _shared[url]


def rate_limiter():
    """The process-wide limiter: shared through Redis when there is one, else in-process."""
    client = redis_client()
    with _shared_lock:
        key = ("limiter", id(client))
        if key not in _shared:
            _shared[key] = RedisRateLimiter(client) if client is not None else LocalRateLimiter()
        return _shared[key]
