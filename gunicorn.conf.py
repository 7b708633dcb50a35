"""gunicorn settings, read from the working directory by every `gunicorn` run of this project.

Threaded workers: a request spends most of its time waiting on PostgreSQL and Redis, so a few threads
per process keep both cores busy where sync workers queue behind each other; keep-alive lets Hull,
Customer.io and the load balancer reuse their connections. Override with WEB_CONCURRENCY and WEB_THREADS.
"""
import os

worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
threads = int(os.environ.get("WEB_THREADS", "4"))
keepalive = 5
timeout = 30
graceful_timeout = 10


def post_worker_init(worker):
    """Import the URLconf (views, DRF) now rather than in the first request, then freeze the heap.

    gc.freeze() moves the objects loaded so far out of the collector's reach: a full collection
    otherwise walks every module object of Django, and those pauses (tens of ms) were the tail
    latency of the smart-notifier under load.
    """
    import gc

    from django.urls import resolve

    resolve("/healthz")
    gc.freeze()
