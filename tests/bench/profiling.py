"""Optional sampling profiles of the app processes with py-spy (`--profile DIR`), summarized as top frames.

py-spy is not a requirement: install it into the venv by hand to use this (`.venv/bin/pip install py-spy`).
"""
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

from .procs import ROOT


def py_spy():
    """Path of the py-spy executable (venv first), or None."""
    local = ROOT / ".venv" / "bin" / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class Recorder:
    """`py-spy record` of one process tree (children included) into a collapsed-stack file."""

    def __init__(self, pid, output, rate=100):
        self.output = Path(output)
        self.popen = subprocess.Popen(
            [py_spy(), "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--rate", str(rate),
             "--format", "raw", "--output", str(self.output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def stop(self):
        """SIGINT makes py-spy write its file; give it a moment."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()


def parse_collapsed(lines):
    """Counters (self, inclusive, total samples) from ``frame;frame;... count`` lines.

    A frame is ``function (file:line)``; frames are keyed without the line so a function counts once.
    The first frame (``process …``/``thread …`` markers) is dropped.
    """
    own, inclusive, total = Counter(), Counter(), 0
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [_frame_key(frame) for frame in stack.split(";") if "(" in frame and ".py" in frame]
        if not frames:
            continue
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    return own, inclusive, total


def _frame_key(frame):
    name, _, location = frame.strip().partition(" (")
    path = location.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def top_frames(path, count=15):
    """``{"samples", "self": [(frame, %)], "inclusive": [(frame, %)]}`` of a collapsed-stack file."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        own, inclusive, total = parse_collapsed(handle)
    if not total:
        return {"samples": 0, "self": [], "inclusive": []}
    return {"samples": total,
            "self": [(frame, 100.0 * n / total) for frame, n in own.most_common(count)],
            "inclusive": [(frame, 100.0 * n / total) for frame, n in inclusive.most_common(count * 3)]}


def format_top(name, summary):
    lines = [f"profile {name}: {summary['samples']} samples (active CPU only)", "  self%   function"]
    lines += [f"  {share:5.1f}   {frame}" for frame, share in summary["self"]]
    lines += ["  incl%   function"]
    lines += [f"  {share:5.1f}   {frame}" for frame, share in summary["inclusive"]]
    return "\n".join(lines)
