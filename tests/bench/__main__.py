"""`make bench`: end-to-end benchmarks of the connector against the fakes, on loopback only.

    python -m tests.bench [--users N] [--workers N] [--web-workers N] [--runs N] [--scenario NAME ...]

Starts the fakes, gunicorn and Celery workers as processes on 127.0.0.1 with a dedicated
PostgreSQL database, Redis db and queue; prints one table (median of the runs, min, max,
targets) and writes it as JSON under tests/bench/results/. See docs/performance.md.
"""
import argparse
import hashlib
import json
import os
import platform
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from .stats import SCENARIOS, format_table, summary_rows

RESULTS_DIR = Path(__file__).resolve().parent / "results"
GROUPS = (("limit",), ("outgoing-new", "outgoing-unchanged"), ("ingest",), ("webhooks",), ("backfill",))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20_000, help="users of the outgoing scenarios (default 20,000)")
    parser.add_argument("--workers", type=int, default=2, help="celery worker processes, concurrency 1 (default 2)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario; figures are medians (default 3)")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeatable; default: all")
    parser.add_argument("--backfill-lines", type=int, default=100_000, help="lines of the extract (default 100,000)")
    parser.add_argument("--ingest-notifications", type=int, default=500,
                        help="notifications (100 users each) posted by the ingest scenario (default 500)")
    parser.add_argument("--webhooks", type=int, default=5_000, help="webhooks per phase (default 5,000)")
    parser.add_argument("--timeout", type=float, default=600, help="time budget of one run, seconds (default 600)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 "postgres://postgres@127.0.0.1:5432/bench"))
    parser.add_argument("--broker-url", default=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/5"))
    parser.add_argument("--queue", default="bench", help="celery queue name (default bench)")
    parser.add_argument("--log-level", default="WARNING", help="LOG_LEVEL of the app processes (default WARNING)")
    parser.add_argument("--no-save", action="store_true", help="do not write the JSON results file")
    parser.add_argument("--profile", metavar="DIR", default=None,
                        help="record py-spy profiles of the web and worker processes into DIR (py-spy must be "
                             "installed in the venv) and print their top functions")
    args = parser.parse_args(argv)
    args.scenario = [name for name in SCENARIOS if name in (args.scenario or SCENARIOS)]
    for host_url in (args.database_url, args.broker_url):
        if "127.0.0.1" not in host_url and "localhost" not in host_url:
            parser.error(f"only loopback services are allowed, got {host_url}")
    if args.runs < 1 or args.users < 100:
        parser.error("--runs must be ≥ 1 and --users ≥ 100")
    if args.profile:
        from .profiling import py_spy

        if py_spy() is None:
            parser.error("--profile needs py-spy: .venv/bin/pip install py-spy")
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    return args


def code_fingerprint():
    """Short digest of the product sources (connector/, sync/, webhooks/): app processes restart every run,
    so a run measures the code as it was when it started; a changing digest flags mixed versions."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[2]
    for package in ("connector", "sync", "webhooks"):
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _stop_on_sigterm():
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def machine_description():
    """CPU, memory, load and versions, for the results file and docs/performance.md."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    description = {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(memory / 1024 / 1024, 1),
                   "load_average": os.getloadavg(), "python": platform.python_version(),
                   "kernel": platform.release()}
    try:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            description["postgresql"] = cursor.fetchone()[0]
    except Exception as err:  # noqa: BLE001 - description only
        description["postgresql"] = f"unknown ({err})"
    return description


def main(argv=None):
    args = parse_args(argv)
    from . import stack as stack_module

    env = {**os.environ, **stack_module.bench_environment(args)}
    os.environ.update(stack_module.bench_environment(args))
    stack_module.database_ensure(args.database_url)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    from .procs import BenchError
    from .scenarios import Context, run_backfill, run_ingest, run_limit, run_outgoing, run_webhooks

    _stop_on_sigterm()
    log_dir = stack_module.log_dir_create()
    print(f"bench: logs in {log_dir}", file=sys.stderr)
    fakes = stack_module.Fakes(env, log_dir)
    runs = {name: {} for name in args.scenario}
    details, errors = [], []
    started_at = datetime.now(timezone.utc)
    machine = machine_description()
    interrupted = False
    ctx = None
    try:
        fakes.start()
        env.update(CUSTOMERIO_TRACK_URL=fakes.cio_url, HULL_FIREHOSE_URL=fakes.hull_url)
        os.environ.update(CUSTOMERIO_TRACK_URL=fakes.cio_url, HULL_FIREHOSE_URL=fakes.hull_url)
        connector = stack_module.connector_import(env, fakes.hull_url, log_dir)
        ctx = Context(args=args, env=env, fakes=fakes, connector=connector, log_dir=log_dir)
        runners = {"limit": run_limit, "outgoing-new": run_outgoing, "ingest": run_ingest,
                   "webhooks": run_webhooks, "backfill": run_backfill}
        for group in GROUPS:
            wanted = [name for name in group if name in args.scenario]
            if not wanted:
                continue
            runner = runners[group[0]]
            for run in range(1, args.runs + 1):
                run_errors = []
                began, load, code = time.monotonic(), os.getloadavg(), code_fingerprint()
                try:
                    if runner is run_outgoing:
                        figures = runner(ctx, run, wanted, run_errors)
                    else:
                        figures = runner(ctx, run, run_errors)
                except BenchError as err:
                    run_errors.append(f"{'/'.join(wanted)} run {run}: {err}")
                    figures = {}
                for name in wanted:
                    for key, value in figures.get(name, {}).items():
                        runs[name].setdefault(key, [None] * (run - 1)).append(value)
                    for values in runs[name].values():
                        values.extend([None] * (run - len(values)))
                details.append({"scenarios": wanted, "run": run, "seconds": round(time.monotonic() - began, 1),
                                "load_average_before": load, "code": code, "figures": figures,
                                "errors": run_errors})
                errors.extend(run_errors)
                _progress(wanted, run, args.runs, figures, run_errors)
    except KeyboardInterrupt:
        interrupted = True
        print("bench: interrupted; stopping every process", file=sys.stderr)
    finally:
        fakes.stop()
    limit = runs.get("limit", {}).get("users_per_s")
    limit_rate = _median(limit)
    if limit_rate and "outgoing-new" in runs and runs["outgoing-new"].get("users_per_s"):
        runs["outgoing-new"]["vs_limit"] = [None if value is None else value / limit_rate
                                            for value in runs["outgoing-new"]["users_per_s"]]
    rows = summary_rows(runs, limit_rate)
    profiles = _print_profiles(ctx.stacks if ctx else [])
    print()
    print(f"Hull ⇄ Customer.io connector benchmark — {args.users:,} users, {args.workers} worker(s), "
          f"{args.web_workers} web worker(s), median of {args.runs} run(s)")
    print(format_table(rows))
    codes = sorted({detail["code"] for detail in details})
    print(f"product code: {', '.join(codes) or code_fingerprint()} (sha256 of connector/, sync/, webhooks/)")
    if len(codes) > 1:
        print("WARNING: the product code changed between runs; medians mix versions (see details[].code)")
    for error in errors:
        print(f"ERROR: {error}")
    report = {"started_at": started_at.isoformat(), "finished_at": datetime.now(timezone.utc).isoformat(),
              "arguments": {key: value for key, value in vars(args).items() if key not in ("database_url",)},
              "machine": {**machine, "load_average_end": os.getloadavg()}, "rows": rows, "runs": runs,
              "details": details, "errors": errors, "profiles": profiles, "interrupted": interrupted, "logs": log_dir}
    if not args.no_save:
        path = results_path(started_at, args.scenario)
        path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"results: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 1 if (interrupted or errors) else 0


def _print_profiles(stacks):
    """Print the top frames of every recorded profile; returns them for the results file."""
    from .profiling import format_top, top_frames

    found = {}
    for stack in stacks:
        for role, path in stack.profiles:
            if path.exists():
                summary = top_frames(path)
                found[str(path)] = summary
                print(format_top(f"{stack.run_label} {role} ({path.name})", summary), file=sys.stderr)
    return found


def results_path(started_at, scenarios):
    name = "all" if tuple(scenarios) == SCENARIOS else "+".join(scenarios)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    return RESULTS_DIR / f"{started_at.strftime('%Y%m%dT%H%M%SZ')}-{name}.json"


def _median(values):
    from .stats import summarize

    return summarize(values or [])["median"]


def _progress(wanted, run, total, figures, errors):
    parts = []
    for name in wanted:
        shown = {key: value for key, value in figures.get(name, {}).items() if isinstance(value, (int, float))}
        parts.append(f"{name}: " + ", ".join(f"{key}={value:,.1f}" for key, value in shown.items()))
    print(f"bench: run {run}/{total} " + " | ".join(parts) + (f" ERRORS: {errors}" if errors else ""),
          file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
