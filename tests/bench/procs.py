"""Child processes of the benchmark (each in its own process group) and their memory, read from /proc."""
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class BenchError(RuntimeError):
    """The benchmark cannot go on (a process did not start, a wait timed out)."""


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout, message, interval=0.1):
    """Poll ``predicate`` until truthy; BenchError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {message}")
        time.sleep(interval)


class Process:
    """A child in its own session (so the whole group can be signalled), output to a log file."""

    def __init__(self, name, command, env, log_dir):
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE if name.startswith("fake")
                                      else self._log, stderr=self._log, start_new_session=True)

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def read_announced_url(self, timeout=30):
        """The fakes print ``listening on http://127.0.0.1:PORT`` once ready."""
        result = {}

        def read():
            line = self.popen.stdout.readline().decode(errors="replace").strip()
            result["line"] = line

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        line = result.get("line", "")
        if not line.startswith("listening on "):
            raise BenchError(f"{self.name} did not announce its URL (got {line!r}); see {self.log_path}")
        return line[len("listening on "):]

    def stop(self, timeout=20):
        """SIGTERM the process group, then SIGKILL what is left after ``timeout`` seconds."""
        if self.alive():
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.pid, signal.SIGKILL)
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._log.close()


def _signal_group(pgid, signum):
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


# memory, from /proc (stdlib only)

def _status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
        return None
    return None


def _parent_pids():
    """{pid: ppid} of every process visible in /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            parents[int(entry)] = int(fields[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return parents


def process_tree(root_pids):
    """The given pids and all their descendants."""
    parents = _parent_pids()
    tree, frontier = set(root_pids), list(root_pids)
    while frontier:
        current = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == current and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return tree


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_ticks(pid, reaped_children=False):
    """utime + stime of a process in clock ticks; with ``reaped_children`` also its exited children's."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        return ticks + int(fields[13]) + int(fields[14]) if reaped_children else ticks
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def postgres_cpu_ticks(postmaster):
    """CPU of the PostgreSQL server so far: postmaster, its exited backends (reaped) and the live ones."""
    total = _cpu_ticks(postmaster, reaped_children=True) or 0
    for pid in process_tree([postmaster]) - {postmaster}:
        total += _cpu_ticks(pid) or 0
    return total


def postmaster_pid():
    """The PostgreSQL server's main process (a `postgres` whose parent is not one), or None."""
    def comm(pid):
        try:
            with open(f"/proc/{pid}/comm", encoding="ascii", errors="replace") as handle:
                return handle.read().strip()
        except OSError:
            return ""

    parents = _parent_pids()
    for pid, ppid in parents.items():
        if comm(pid) == "postgres" and comm(ppid) != "postgres":
            return pid
    return None


def machine_busy_ticks():
    """Busy (non-idle, non-iowait) clock ticks of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    return sum(values) - values[3] - values[4]


class RssSampler:
    """Samples VmHWM (peak RSS) of process trees by role in a background thread.

    VmHWM is the kernel's exact high-water mark of each process; sampling only has to see
    every process once before it exits. ``peak_mb(role)`` is the largest per-process peak.
    """

    def __init__(self, interval=0.25):
        self.interval = interval
        self._roots = {}
        self._single = set()
        self._peaks = {}
        self._cpu = {}
        self._cpu_mark = {}
        self._busy_mark = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def watch(self, role, pid, tree=True):
        """Sample ``pid`` and its descendants as ``role`` (the process alone with ``tree`` False)."""
        with self._lock:
            self._roots.setdefault(role, set()).add(pid)
            if not tree:
                self._single.add(pid)

    def sample(self):
        with self._lock:
            roots = {role: set(pids) for role, pids in self._roots.items()}
            single = set(self._single)
        for role, pids in roots.items():
            for pid in process_tree(pids - single) | (pids & single):
                peak, ticks = _status_kb(pid, "VmHWM"), _cpu_ticks(pid)
                with self._lock:
                    key = (role, pid)
                    if peak is not None:
                        self._peaks[key] = max(peak, self._peaks.get(key, 0))
                    if ticks is not None:
                        self._cpu[key] = max(ticks, self._cpu.get(key, 0))

    def mark(self):
        """Start of the measured window for ``cpu_seconds`` and ``machine_busy_seconds``."""
        self.sample()
        with self._lock:
            self._cpu_mark = dict(self._cpu)
            self._busy_mark = machine_busy_ticks()

    def cpu_seconds(self, role):
        """CPU time the role's processes used since ``mark()`` (processes started later count fully)."""
        with self._lock:
            ticks = sum(value - self._cpu_mark.get(key, 0) for key, value in self._cpu.items() if key[0] == role)
        return ticks / CLOCK_TICKS

    def machine_busy_seconds(self):
        """CPU time the whole machine (every process, ours or not) used since ``mark()``."""
        if self._busy_mark is None:
            return None
        return (machine_busy_ticks() - self._busy_mark) / CLOCK_TICKS

    def peak_mb(self, role):
        with self._lock:
            values = [kb for (name, _), kb in self._peaks.items() if name == role]
        return max(values) / 1024.0 if values else None

    def start(self):
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sample()
