"""Child processes of the soak, each in its own process group, with output in a log file."""
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


class SoakError(RuntimeError):
    """The soak cannot go on (a process did not start, a wait timed out)."""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout, message, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise SoakError(f"timed out after {timeout:.0f}s waiting for {message}")
        time.sleep(interval)


class Process:
    def __init__(self, name, command, env, log_dir):
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self._log, stderr=self._log,
                                      start_new_session=True)

    def alive(self):
        return self.popen.poll() is None

    def stop(self, timeout=15):
        if self.alive():
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
            except ProcessLookupError:
                pass
        self._log.close()


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
