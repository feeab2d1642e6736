"""A booking campaign opening: `--users` simulated people (2,000) browse, book, cancel and
queue for `--minutes` (5) against `slotease serve` with Redis and a `slotease worker`, driven
by locust in several processes (bench/campaign/locustfile.py); then an SQL check that no slot
is overbooked, and the figures as markdown for docs/performance.md.

    .venv/bin/python -m bench.campaign [--users 2000] [--spawn-rate 50] [--minutes 5]
        [--locust-processes 2] [--api-workers N]

The bench database is `slotease_bench_locust` on BENCH_SERVER_URL; Redis is REDIS_URL
(default redis://127.0.0.1:6379/7, emptied first). Without `--api-workers`, `slotease serve`
runs as many processes as it chooses by default. The server keeps its default pool and rate
limits per user: every simulated person is signed in, so no anonymous limit per address
(all of them call from 127.0.0.1) stands in the way; the WebSocket connections per address
are lifted for the same reason.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import redis

from bench.booking import overbooked_slots
from bench.campaign import report
from bench.campaign.seed import seed
from bench.common import app_role_conninfo, fresh_database, machine, worker_role_conninfo
from bench.server import BENCH_JWT_SECRET, free_port

DATABASE = "slotease_bench_locust"
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
ROOT = LOCUSTFILE.parents[2]
TICKS = os.sysconf("SC_CLK_TCK")


def slotease() -> str:
    executable = shutil.which("slotease", path=str(Path(sys.executable).parent))
    if executable is None:
        raise RuntimeError("slotease is not installed in this environment")
    return executable


def server_environment(owner: str, redis_url: str) -> dict[str, str]:
    """What a deployment gives both `slotease serve` and `slotease worker`."""
    return {
        **os.environ,
        "DATABASE_URL": owner,
        "SLOTEASE_APP_DATABASE_URL": app_role_conninfo(owner),
        "SLOTEASE_WORKER_DATABASE_URL": worker_role_conninfo(owner),
        "REDIS_URL": redis_url,
        "SLOTEASE_JWT_SECRET": BENCH_JWT_SECRET,
        "SLOTEASE_LOG_LEVEL": "WARNING",
        # Every simulated person connects from 127.0.0.1.
        "SLOTEASE_REALTIME_CONNECTIONS_PER_ADDRESS": "100000",
    }


@contextmanager
def running(argv: list[str], env: dict[str, str], what: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(argv, env=env)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            print(f"{what} did not stop in 30 s: killed", file=sys.stderr)
            process.kill()
            process.wait()


def wait_for(ready: Callable[[], bool], what: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        if ready():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not become ready")


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def worker_registered(owner: str) -> bool:
    with psycopg.connect(owner) as conn:
        row = conn.execute("select count(*) from public.procrastinate_workers").fetchone()
    return row is not None and row[0] > 0


def cpu_seconds(pid: int) -> float:
    """CPU time of a live process and its descendants (those it reaped included)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        # utime, stime, cutime, cstime
        times[int(entry.name)] = sum(int(field) for field in fields[11:15]) / TICKS
    tree, total = {pid}, 0.0
    for candidate in sorted(parents):
        ancestor = candidate
        while ancestor > 1 and ancestor not in tree:
            ancestor = parents.get(ancestor, 0)
        if ancestor in tree:
            tree.add(candidate)
            total += times.get(candidate, 0.0)
    return total


def database_cpu_seconds(owner: str) -> float:
    """CPU time of the PostgreSQL backends connected to the bench database."""
    with psycopg.connect(owner) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "select pid from pg_stat_activity where datname = current_database()"
                " and pid <> pg_backend_pid()"
            ).fetchall()
        ]
    return sum(cpu_seconds(pid) for pid in pids)


def cpu_use(api: int, worker: int, owner: str) -> dict[str, float]:
    """CPU seconds used so far by each side; locust's, once it has ended and been reaped."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "API": cpu_seconds(api),
        "worker": cpu_seconds(worker),
        "PostgreSQL backends": database_cpu_seconds(owner),
        "locust": children.ru_utime + children.ru_stime,
    }


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def locust(url: str, plan: Path, prefix: Path, args: argparse.Namespace) -> list[str]:
    """Run locust headless to its end; answer the load averages seen every 30 s."""
    env = {
        **os.environ,
        "CAMPAIGN_PLAN": str(plan),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--host", url, "--users", str(args.users), "--spawn-rate", str(args.spawn_rate),
        "--run-time", f"{args.minutes * 60:.0f}s", "--processes", str(args.locust_processes),
        "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
        "--stop-timeout", "10", "--exit-code-on-error", "0",
    ]  # fmt: skip
    seen = []
    # Its own summary repeats the table printed from its CSV files.
    process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    next_sample = time.monotonic() + 30
    try:
        while process.poll() is None:
            time.sleep(1)
            if time.monotonic() >= next_sample:
                seen.append(load_average())
                next_sample += 30
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
    if process.returncode != 0:
        raise RuntimeError(f"locust exited with status {process.returncode}")
    return seen


def outcome(owner: str) -> str:
    with psycopg.connect(owner) as conn:
        appointments = conn.execute(
            "select status, count(*) from public.appointments group by 1 order by 1"
        ).fetchall()
        tickets = conn.execute(
            "select status, count(*) from public.tickets group by 1 order by 1"
        ).fetchall()
    return f"appointments {_counts(appointments)}; tickets {_counts(tickets)}"


def _counts(rows: list[tuple[str, int]]) -> str:
    return ", ".join(f"{status} {count:,}" for status, count in rows) or "none"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--spawn-rate", type=float, default=50)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--locust-processes", type=int, default=2)
    parser.add_argument("--api-workers", type=int, help="slotease serve --workers")
    args = parser.parse_args()

    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/7")
    owner = fresh_database(DATABASE)
    plan = seed(
        owner,
        customers=args.users,
        slices=args.locust_processes,
        token_seconds=int(args.minutes * 60) + 3600,
    )
    redis.Redis.from_url(redis_url).flushdb()
    env = server_environment(owner, redis_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = [slotease(), "serve", "--host", "127.0.0.1", "--port", str(port), "--no-worker"]
    if args.api_workers:
        serve += ["--workers", str(args.api_workers)]
    with tempfile.TemporaryDirectory(prefix="campaign-") as tmp:
        plan_path = Path(tmp) / "plan.json"
        plan.write(plan_path)
        prefix = Path(tmp) / "locust"
        with (
            running(serve, env, "slotease serve") as api,
            running([slotease(), "worker"], env, "slotease worker") as worker,
        ):
            wait_for(lambda: answers(url), "slotease serve", api)
            wait_for(lambda: worker_registered(owner), "slotease worker", worker)
            before = load_average()
            started = cpu_use(api.pid, worker.pid, owner)
            wall = time.monotonic()
            during = locust(url, plan_path, prefix, args)
            wall = time.monotonic() - wall
            cpu = {
                name: seconds - started[name]
                for name, seconds in cpu_use(api.pid, worker.pid, owner).items()
            }
            after = load_average()
        summary = report.read(prefix)
    overbooked = overbooked_slots(owner)
    print(
        f"Machine: {machine()}. {args.users:,} users ({len(plan.counters)} of them counter"
        f" staff), spawn rate {args.spawn_rate:g}/s, {args.minutes:g} min,"
        f" {args.locust_processes} locust processes, `slotease serve`"
        f" {f'--workers {args.api_workers}' if args.api_workers else '(its default processes)'}"
        " with Redis and one `slotease worker`."
    )
    print(
        f"Load average before {before}, during {' / '.join(during) or '-'}, after {after}."
        f" CPU seconds over the {wall:.0f} s of load: "
        + ", ".join(f"{name} {seconds:,.1f}" for name, seconds in cpu.items())
        + f"; the API used {cpu['API'] / wall:.0%} of one core,"
        f" {cpu['API'] * 1000 / max(summary.total.requests, 1):.1f} ms of CPU per request."
    )
    print(f"Outcome: {outcome(owner)}; overbooked slots: **{overbooked}**.\n")
    print(report.markdown(summary))


if __name__ == "__main__":
    main()
