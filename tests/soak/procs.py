"""Child processes of the soak: gunicorn and Celery workers (process handling shared with the benchmark)."""
import socket
import sys
import uuid

import requests

from tests.bench.procs import ROOT, Process, free_port, wait_for
from tests.bench.procs import BenchError as SoakError

__all__ = ["ROOT", "SoakError", "start_gunicorn", "start_worker"]


def start_gunicorn(env, log_dir, workers=2):
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "connector.wsgi:application", "-b", f"127.0.0.1:{port}",
               "-w", str(workers), "--timeout", "30", "--graceful-timeout", "5", "--log-level", "warning"]
    process = Process("gunicorn", command, env, log_dir)
    url = f"http://127.0.0.1:{port}"

    def healthy():
        if not process.alive():
            raise SoakError(f"gunicorn exited; see {process.log_path}")
        try:
            return requests.get(f"{url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_for(healthy, 30, "gunicorn to answer /healthz")
    return process, url


def start_worker(env, log_dir, queue, celery_app, concurrency=2):
    name = f"soak{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    command = [sys.executable, "-m", "celery", "-A", "connector", "worker", "--loglevel=WARNING",
               f"--concurrency={concurrency}", "-Q", queue, "--without-gossip", "--without-mingle",
               "--without-heartbeat", "-n", name]
    process = Process(f"worker-{name.split('@')[0]}", command, env, log_dir)
    wait_for(lambda: celery_app.control.ping(destination=[name], timeout=0.5), 60, f"worker {name}")
    return process
