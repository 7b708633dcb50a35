"""Tests for sync.ratelimit: per-workspace pacing, in-process and shared through Redis.

Timing assertions are lower bounds only (a slow machine may take longer, never shorter).
"""
import os
import threading
import time
import types
import uuid

import pytest
import redis

import sync.ratelimit
from sync.ratelimit import LocalRateLimiter, RedisRateLimiter, rate_limiter

REDIS_URL = os.environ.get("CELERY_BROKER_URL", "")
needs_redis = pytest.mark.skipif(not REDIS_URL.startswith("redis"),
                                 reason="RedisRateLimiter tests need CELERY_BROKER_URL=redis://…")


def paced_duration(acquire, count):
    started = time.monotonic()
    for _ in range(count):
        acquire()
    return time.monotonic() - started


@pytest.fixture
def recorded_sleeps(monkeypatch):
    """Record the limiter's sleeps without sleeping (the limiter keeps its own timeline)."""
    sleeps = []
    monkeypatch.setattr(sync.ratelimit, "time", types.SimpleNamespace(
        sleep=sleeps.append, monotonic=time.monotonic, time=time.time))
    return sleeps


# --- LocalRateLimiter ----------------------------------------------------------------------

def test_local_paces_n_acquisitions_at_rate_r():
    limiter, count, rate = LocalRateLimiter(), 6, 20
    elapsed = paced_duration(lambda: limiter.acquire("workspace", rate), count)
    assert elapsed >= 0.8 * (count - 1) / rate


def test_local_first_acquisition_does_not_wait(recorded_sleeps):
    LocalRateLimiter().acquire("workspace", 1)
    assert recorded_sleeps == []


def test_local_reserves_consecutive_slots(recorded_sleeps):
    limiter = LocalRateLimiter()
    for _ in range(5):
        limiter.acquire("workspace", 10)
    assert len(recorded_sleeps) == 4
    # The k-th wait is about k/rate (lower bound; clock moves between calls).
    for k, delay in enumerate(recorded_sleeps, start=1):
        assert delay >= 0.8 * k / 10


def test_local_keys_are_independent(recorded_sleeps):
    limiter = LocalRateLimiter()
    for _ in range(5):
        limiter.acquire("busy-workspace", 1)
    waits_before = len(recorded_sleeps)
    limiter.acquire("other-workspace", 1)
    assert len(recorded_sleeps) == waits_before  # the other key did not wait


def test_local_is_shared_by_threads():
    limiter, rate, threads, each = LocalRateLimiter(), 40, 4, 3
    workers = [threading.Thread(target=lambda: [limiter.acquire("shared", rate) for _ in range(each)])
               for _ in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert time.monotonic() - started >= 0.8 * (threads * each - 1) / rate


def test_local_idle_time_is_not_banked(recorded_sleeps):
    limiter = LocalRateLimiter()
    limiter.acquire("workspace", 10)
    time.sleep(0.3)  # idle for three slots
    limiter.acquire("workspace", 10)
    limiter.acquire("workspace", 10)
    # After idling, only the first one goes free; the next waits for its slot.
    assert len(recorded_sleeps) == 1


# --- rate_limiter() ------------------------------------------------------------------------

def test_rate_limiter_is_local_without_redis(settings, monkeypatch):
    settings.CELERY_BROKER_URL = ""
    monkeypatch.delenv("RATE_LIMIT_REDIS_URL", raising=False)
    monkeypatch.setattr(sync.ratelimit, "_shared", {})
    limiter = rate_limiter()
    assert isinstance(limiter, LocalRateLimiter)
    assert rate_limiter() is limiter


def test_rate_limiter_uses_redis_broker(settings, monkeypatch):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6399/0"  # constructing does not connect
    monkeypatch.delenv("RATE_LIMIT_REDIS_URL", raising=False)
    monkeypatch.setattr(sync.ratelimit, "_shared", {})
    assert isinstance(rate_limiter(), RedisRateLimiter)


def test_rate_limiter_prefers_its_own_redis_url(settings, monkeypatch):
    settings.CELERY_BROKER_URL = "amqp://guest@localhost//"
    monkeypatch.setenv("RATE_LIMIT_REDIS_URL", "rediss://cache.example.test:6380/1")
    monkeypatch.setattr(sync.ratelimit, "_shared", {})
    assert isinstance(rate_limiter(), RedisRateLimiter)


def test_rate_limiter_is_local_for_other_brokers(settings, monkeypatch):
    settings.CELERY_BROKER_URL = "amqp://guest@localhost//"
    monkeypatch.delenv("RATE_LIMIT_REDIS_URL", raising=False)
    monkeypatch.setattr(sync.ratelimit, "_shared", {})
    assert isinstance(rate_limiter(), LocalRateLimiter)


# --- RedisRateLimiter ----------------------------------------------------------------------

@pytest.fixture
def redis_key():
    key = f"test-{uuid.uuid4().hex}"
    yield key
    RedisRateLimiter(redis.Redis.from_url(REDIS_URL))._client.delete(f"cio:pace:{key}")


@needs_redis
def test_redis_paces_n_acquisitions_at_rate_r(redis_key):
    limiter, count, rate = RedisRateLimiter(redis.Redis.from_url(REDIS_URL)), 6, 20
    elapsed = paced_duration(lambda: limiter.acquire(redis_key, rate), count)
    assert elapsed >= 0.8 * (count - 1) / rate


@needs_redis
def test_redis_pace_is_shared_by_two_limiter_instances(redis_key):
    """Two instances stand for two worker processes: together they still keep the pace."""
    limiters = [RedisRateLimiter(redis.Redis.from_url(REDIS_URL)), RedisRateLimiter(redis.Redis.from_url(REDIS_URL))]
    count, rate = 8, 20
    started = time.monotonic()
    for number in range(count):
        limiters[number % 2].acquire(redis_key, rate)
    assert time.monotonic() - started >= 0.8 * (count - 1) / rate


@needs_redis
def test_redis_pace_is_shared_by_concurrent_instances(redis_key):
    rate, workers, each = 40, 3, 4
    stamps, lock = [], threading.Lock()

    def work():
        limiter = RedisRateLimiter(redis.Redis.from_url(REDIS_URL))
        for _ in range(each):
            limiter.acquire(redis_key, rate)
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=work) for _ in range(workers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(stamps) == workers * each
    assert max(stamps) - started >= 0.8 * (workers * each - 1) / rate


@needs_redis
def test_redis_keys_are_independent(redis_key, recorded_sleeps):
    other = f"{redis_key}-other"
    limiter = RedisRateLimiter(redis.Redis.from_url(REDIS_URL))
    try:
        for _ in range(5):
            limiter.acquire(redis_key, 1)
        assert len(recorded_sleeps) == 4
        limiter.acquire(other, 1)
        assert len(recorded_sleeps) == 4  # a fresh key does not wait behind the busy one
    finally:
        limiter._client.delete(f"cio:pace:{other}")


@needs_redis
def test_redis_waits_grow_by_one_interval(redis_key, recorded_sleeps):
    limiter = RedisRateLimiter(redis.Redis.from_url(REDIS_URL))
    for _ in range(4):
        limiter.acquire(redis_key, 10)
    assert len(recorded_sleeps) == 3
    for k, delay in enumerate(recorded_sleeps, start=1):
        assert delay >= 0.8 * k / 10


@needs_redis
def test_redis_key_expires_after_the_pace_is_over(redis_key):
    limiter = RedisRateLimiter(redis.Redis.from_url(REDIS_URL))
    limiter.acquire(redis_key, 100)
    ttl_ms = limiter._client.pttl(f"cio:pace:{redis_key}")
    assert 0 < ttl_ms <= 1100  # no key left behind for idle workspaces
