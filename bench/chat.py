"""Benchmark: one chat workload against dendrite-lite and Synapse, side by side (issue 4).

    .venv/bin/python bench/chat.py [--repeat 3] [--servers dendrite-lite,synapse]
                                   [--json chat-results.json] [--keep DIR]

Per server and repeat, on a fresh server (subprocess, SQLite, plain HTTP on 127.0.0.1, rate limits
off; see bench/_servers.py):
  1. idle RSS: median VmRSS over 1 s, 2 s after /health first answered;
  2. register 50 users; user 0 creates 10 public rooms; every other user joins all 10
     (50 members per room);
  3. 2,000 messages at concurrency 16 from seeded random (member, room) pairs: throughput and
     per-request latency p50/p95/p99;
  4. initial sync (no since, no filter) of 10 distinct users, each in 10 rooms, one at a time;
     checks every room's unread_notifications.notification_count against the messages the
     user did not send (the push-rule work the spec requires; both servers must have done it);
  5. sync wake-up: 4 users long-poll /sync; another user sends 100 messages one at a time, each
     after the listeners re-parked; latency = a listener's response arrival - the send's start;
  6. peak RSS: max VmRSS (sampled every 50 ms) from the first registration to the end.
Servers alternate order between repeats; the table shows medians (min-max) over repeats, the
ratio ours/Synapse and the issue's goal. Every run's raw numbers go to the JSON file.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _client import Homeserver, User  # noqa: E402
from _servers import ProcessWatch, ServerProcess, start_dendrite, start_synapse  # noqa: E402

T = TypeVar("T")

SERVERS = ("dendrite-lite", "synapse")
PASSWORD = "bench-password-123"
TEXT = "the quick brown fox jumps over the lazy dog, message {i}"


@dataclass(frozen=True)
class Workload:
    users: int = 50
    rooms: int = 10
    messages: int = 2000
    concurrency: int = 16
    initial_syncs: int = 10
    listeners: int = 4
    wakeups: int = 100
    seed: int = 4


def pct(data: list[float], p: int) -> float:
    """The p-th percentile (inclusive linear interpolation, like numpy's default)."""
    if len(data) == 1:
        return data[0]
    return statistics.quantiles(data, n=100, method="inclusive")[p - 1]


async def bounded(jobs: Iterable[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run the job factories with at most `limit` in flight; results in job order."""
    sem = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with sem:
            return await job()

    return list(await asyncio.gather(*(one(j) for j in jobs)))


def _client_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def run_workload(
    server: ServerProcess, w: Workload, watch: ProcessWatch, profile: Path | None = None
) -> dict[str, Any]:
    m: dict[str, Any] = {}
    await asyncio.sleep(2.0)  # let startup work (caches, background loops) settle
    t = time.monotonic()
    await asyncio.sleep(1.0)
    m["idle_rss_mib"] = statistics.median(watch.rss_between(t, time.monotonic())) / 1024
    load_start = time.monotonic()
    cpu = watch.cpu_s()

    def cpu_since() -> float:
        nonlocal cpu
        now = watch.cpu_s()
        used, cpu = now - cpu, now
        return used

    hs = Homeserver(server.base_url, max_connections=w.concurrency + 4)
    try:
        # --- Setup: users, rooms, joins (timed for information; no goal) ---
        t = time.perf_counter()
        users: list[User] = await bounded(
            (functools.partial(hs.register, f"user{i:03d}", PASSWORD) for i in range(w.users)),
            w.concurrency,
        )
        m["register_s"] = time.perf_counter() - t
        m["register_cpu_s"] = cpu_since()

        t = time.perf_counter()
        room_ids = [
            await users[0].create_room({"preset": "public_chat", "name": f"bench room {r}"})
            for r in range(w.rooms)
        ]
        m["create_rooms_s"] = time.perf_counter() - t
        t = time.perf_counter()
        await bounded(
            (functools.partial(u.join, r) for r in room_ids for u in users[1:]), w.concurrency
        )
        m["joins_s"] = time.perf_counter() - t
        m["joins"] = (w.users - 1) * w.rooms
        m["rooms_and_joins_cpu_s"] = cpu_since()

        # --- Sends at concurrency: throughput and latency ---
        rng = random.Random(w.seed)
        jobs = [(rng.randrange(w.users), rng.randrange(w.rooms)) for _ in range(w.messages)]
        sent_by: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))  # room->user->n
        latencies: list[float] = []
        next_job = iter(range(w.messages))

        async def sender() -> None:
            for i in next_job:
                u, r = jobs[i]
                start = time.perf_counter()
                await users[u].send_text(room_ids[r], TEXT.format(i=i))
                latencies.append(time.perf_counter() - start)
                sent_by[r][u] += 1

        spy = start_profiler(server.pid, profile.with_suffix(".send.txt")) if profile else None
        client_cpu = _client_cpu_s()
        chat_start = time.monotonic()
        t = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(w.concurrency)))
        elapsed = time.perf_counter() - t
        if spy is not None:
            stop_profiler(spy)
        m["send_s"] = elapsed
        m["send_per_s"] = w.messages / elapsed
        for p in (50, 95, 99):
            m[f"send_p{p}_ms"] = pct(latencies, p) * 1000
        m["send_cpu_s"] = cpu_since()
        m["send_cpu_ms_per_msg"] = m["send_cpu_s"] * 1000 / w.messages
        m["client_cpu_share"] = (_client_cpu_s() - client_cpu) / elapsed

        # --- Initial syncs of distinct users (Synapse caches a user's identical sync for 2 min) ---
        sync_users = list(range(w.users - w.initial_syncs, w.users))
        times, events, checked, wrong = [], [], 0, []
        for u in sync_users:
            t = time.perf_counter()
            body = await users[u].sync()
            times.append(time.perf_counter() - t)
            joined = body.get("rooms", {}).get("join", {})
            if set(joined) != set(room_ids):
                raise RuntimeError(f"{users[u].user_id}: initial sync has rooms {sorted(joined)}")
            n_events = 0
            for r, rid in enumerate(room_ids):
                room = joined[rid]
                n_events += len(room.get("timeline", {}).get("events", []))
                n_events += len(room.get("state", {}).get("events", []))
                want = sum(sent_by[r].values()) - sent_by[r][u]
                got = room.get("unread_notifications", {}).get("notification_count")
                checked += 1
                if got != want:
                    wrong.append({"user": users[u].user_id, "room": rid, "want": want, "got": got})
            events.append(n_events)
        m["initial_sync_ms"] = statistics.median(times) * 1000
        m["initial_sync_all_ms"] = [x * 1000 for x in times]
        m["initial_sync_events"] = statistics.median(events)
        m["unread_counts_checked"] = checked
        m["unread_counts_wrong"] = len(wrong)
        m["unread_counts_wrong_examples"] = wrong[:5]
        m["initial_sync_cpu_s"] = cpu_since()

        # --- Sync wake-up latency ---
        spy = start_profiler(server.pid, profile.with_suffix(".wakeup.txt")) if profile else None
        m.update(await wakeup_phase(hs, users, room_ids, w))
        if spy is not None:
            stop_profiler(spy)
        m["wakeup_cpu_s"] = cpu_since()
    finally:
        await hs.aclose()
    load_end = time.monotonic()
    m["peak_rss_mib"] = max(watch.rss_between(load_start, load_end)) / 1024
    # Setup (password hashing at registration) can peak apart from the chat itself.
    m["peak_rss_chat_mib"] = max(watch.rss_between(chat_start, load_end)) / 1024
    m["end_rss_mib"] = watch.rss_between(load_start, load_end)[-1] / 1024
    return m


async def wakeup_phase(
    hs: Homeserver, users: list[User], room_ids: list[str], w: Workload
) -> dict[str, Any]:
    listeners = users[1 : 1 + w.listeners]
    sender = users[1 + w.listeners]
    arrivals: dict[str, dict[int, float]] = defaultdict(dict)
    news = asyncio.Condition()
    # Long-polls get their own pool: parked requests must not hold connections sends need.
    poll_http = hs.new_pool(w.listeners + 2)

    async def listen(j: int, user: User) -> None:
        since = (await user.sync(http=poll_http))["next_batch"]
        ready[j].set()
        while True:
            body = await user.sync(since=since, timeout_ms=30_000, http=poll_http)
            arrived = time.perf_counter()
            since = body["next_batch"]
            for room in body.get("rooms", {}).get("join", {}).values():
                for ev in room.get("timeline", {}).get("events", []):
                    arrivals[ev["event_id"]][j] = arrived
            async with news:
                news.notify_all()

    ready = [asyncio.Event() for _ in listeners]
    tasks = [asyncio.create_task(listen(j, u)) for j, u in enumerate(listeners)]
    wake: list[float] = []
    quiet_send: list[float] = []
    try:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 120)
        for k in range(w.wakeups):
            # Give every listener time to send its next long-poll and park on the server, so
            # this measures a wake-up rather than a poll that happens to come in late.
            await asyncio.sleep(0.1)
            start = time.perf_counter()
            event_id = await sender.send_text(room_ids[k % len(room_ids)], TEXT.format(i=f"w{k}"))
            quiet_send.append(time.perf_counter() - start)
            async with news:
                await asyncio.wait_for(
                    news.wait_for(lambda: len(arrivals.get(event_id, ())) == len(listeners)), 30
                )
            wake.extend(t - start for t in arrivals[event_id].values())
            for task in tasks:
                if task.done():
                    task.result()  # a listener failed: raise its error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await poll_http.close()
    return {
        "wakeup_p50_ms": pct(wake, 50) * 1000,
        "wakeup_p95_ms": pct(wake, 95) * 1000,
        "quiet_send_p50_ms": pct(quiet_send, 50) * 1000,
    }


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy (pip install py-spy into .venv) sampling `pid` into collapsed stacks at `out`.

    --nonblocking: the server is not paused per sample, so the profile barely slows it down.
    One line per distinct stack ("frame;frame;... count"), thread names included, so the event
    loop and the SQLite threads show apart; read it with bench/README.md's one-liners."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    proc = subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(out),
         "--rate", "200", "--nonblocking", "--threads"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # attaching takes a moment; the phase must not start before sampling does
    return proc


def stop_profiler(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    proc.wait(timeout=60)


# --- Runs and the report ---------------------------------------------------------------------


def run_one(
    name: str, w: Any, keep: Path | None, run_no: int, profile_dir: Path | None,
    overrides: list[str], workload: Callable[..., Awaitable[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """One fresh server, `workload(server, w, watch, profile)` against it (default: the chat
    workload; bench/key_exchange.py passes its own), then stop it and clean up."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        workdir = Path(tmp)
        if name == "dendrite-lite":
            server = start_dendrite(workdir, overrides)
        else:
            server = start_synapse(workdir)
        watch = ProcessWatch(server.pid)
        watch.start()
        try:
            startup_s = server.wait_ready()
            profile = None
            if profile_dir is not None and name == "dendrite-lite":
                profile_dir.mkdir(parents=True, exist_ok=True)
                profile = profile_dir / f"{name}-{run_no}"
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                metrics = runner.run((workload or run_workload)(server, w, watch, profile))
            metrics["startup_s"] = startup_s
            return metrics
        finally:
            server.stop()
            watch.stop()
            if keep is not None:
                dest = keep / f"{name}-{run_no}"
                shutil.rmtree(dest, ignore_errors=True)
                shutil.copytree(workdir, dest, ignore=shutil.ignore_patterns("*.db*", "media"))


Row = tuple[str, str, int, tuple[str, float] | None]


def rows(w: Workload) -> list[Row]:
    """(key, label, digits, goal as (op, factor) on ours/Synapse or None), in table order."""
    return [
        ("send_per_s", "send throughput (msg/s)", 0, (">=", 10)),
        ("send_p50_ms", "send latency p50 (ms)", 1, None),
        ("send_p95_ms", "send latency p95 (ms)", 1, ("<=", 0.1)),
        ("send_p99_ms", "send latency p99 (ms)", 1, None),
        ("wakeup_p50_ms", "sync wake-up p50 from send start (ms)", 1, ("<=", 1 / 3)),
        ("wakeup_p95_ms", "sync wake-up p95 from send start (ms)", 1, None),
        ("quiet_send_p50_ms", "send latency, one at a time, p50 (ms)", 1, None),
        ("initial_sync_ms", f"initial sync, {w.rooms} rooms (ms)", 1, ("<=", 1)),
        ("idle_rss_mib", "idle RSS (MiB)", 1, None),
        ("peak_rss_mib", "peak RSS (MiB)", 1, ("<=", 0.5)),
        ("peak_rss_chat_mib", "peak RSS from the first send on (MiB)", 1, None),
        ("send_cpu_ms_per_msg", "server CPU per message sent (ms)", 2, None),
        ("register_s", f"register {w.users} users (s)", 2, None),
        ("joins_s", f"{(w.users - 1) * w.rooms} joins at concurrency {w.concurrency} (s)", 2, None),
        ("initial_sync_events", "initial sync: timeline+state events", 0, None),
        ("unread_counts_wrong", f"wrong unread counts (of {w.initial_syncs * w.rooms} checked)", 0, None),
        ("client_cpu_share", "bench client CPU during sends (cores)", 2, None),
    ]


def _fmt(values: list[float], digits: int) -> str:
    med = statistics.median(values)
    text = f"{med:,.{digits}f}"
    if len(values) > 1 and min(values) != max(values):
        text += f" ({min(values):,.{digits}f}–{max(values):,.{digits}f})"
    return text


def render_table(runs: dict[str, list[dict[str, Any]]], w: Workload) -> str:
    return markdown_table(runs, rows(w))


def markdown_table(runs: dict[str, list[dict[str, Any]]], table_rows: list[Row]) -> str:
    """Medians (min-max) per server, ours/Synapse and the goal per row (bench/key_exchange.py
    shares it)."""
    names = list(runs)
    ours, theirs = "dendrite-lite", "synapse"
    both = ours in runs and theirs in runs
    header = ["metric", *names] + (["ours / Synapse", "goal", "met"] if both else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, label, digits, goal in table_rows:
        row = [label]
        meds = {}
        for name in names:
            values = [r[key] for r in runs[name] if key in r]
            meds[name] = statistics.median(values) if values else float("nan")
            row.append(_fmt(values, digits) if values else "–")
        if both:
            ratio = meds[ours] / meds[theirs] if meds[theirs] else float("nan")
            row.append(f"{ratio:.2f}x" if ratio == ratio else "–")  # NaN: nothing to compare
            if goal is None:
                row += ["", ""]
            else:
                op, factor = goal
                met = ratio >= factor if op == ">=" else ratio <= factor
                row += [f"{op} {factor:.2f}x", "yes" if met else "**NO**"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--servers", default="dendrite-lite,synapse",
                    help="comma-separated: dendrite-lite, synapse")
    ap.add_argument("--json", type=Path, default=Path("chat-results.json"))
    ap.add_argument("--keep", type=Path, default=None, help="copy each run's config and logs here")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=TOML",
                    help="override a key of our config (experiments), e.g. "
                         "'database.synchronous=\"NORMAL\"'; repeatable")
    ap.add_argument("--profile", type=Path, default=None,
                    help="py-spy dendrite-lite's send and wake-up phases into this directory "
                         "(skews its numbers)")
    for field, default in asdict(Workload()).items():
        ap.add_argument(f"--{field.replace('_', '-')}", type=int, default=default)
    args = ap.parse_args()
    w = Workload(**{f: getattr(args, f) for f in asdict(Workload())})
    names = [n.strip().lower() for n in args.servers.split(",") if n.strip()]
    for n in names:
        if n not in SERVERS:
            ap.error(f"unknown server {n!r}")
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for rep in range(args.repeat):
        order = names if rep % 2 == 0 else names[::-1]  # alternate, so drift hits both alike
        for name in order:
            print(f"[run {rep + 1}/{args.repeat}] {name} ...", file=sys.stderr, flush=True)
            metrics = run_one(name, w, args.keep, rep + 1, args.profile, args.set)
            runs[name].append(metrics)
            print("  " + ", ".join(f"{k}={metrics[k]:.1f}" for k, *_ in rows(w)[:10]), file=sys.stderr)
    table = render_table(runs, w)
    print(table)
    args.json.write_text(json.dumps({
        "workload": asdict(w),
        "repeat": args.repeat,
        "machine": {"cpus": _cpus(), "python": platform.python_version(), "platform": platform.platform()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runs": runs,
        "table": table,
    }, indent=2))
    print(f"\nraw numbers: {args.json}", file=sys.stderr)


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
