"""Benchmark: a user joining a 1,000-member Synapse room over federation, from a fresh
dendrite-lite and from a fresh Synapse, side by side (issue 5).

    .venv/bin/python bench/federation.py [--members 1000] [--repeat 3]
                                         [--json federation-results.json] [--profile DIR]

1. Setup (timed, no goal): a host Synapse ("A", TLS on 127.0.0.1, tests/interop/synapse_server.py)
   gets an admin, a public room, `--members` users made with the admin API (PUT
   /_synapse/admin/v2/users, no password, so no bcrypt) and joined with the admin join API
   (POST /_synapse/admin/v1/join); checked with the admin members API.
2. One unmeasured join by a throwaway dendrite-lite (--warmup, default on), so the first
   measured joiner does not pay for A's cold caches alone.
3. Per repeat, for each joiner (order alternates between repeats): a FRESH joining server as a
   subprocess (dendrite-lite from .venv with TLS files mode; or Synapse "B" like A, started
   before the room is built and measured once its start-up background updates are done), one
   user registered on it; then
   - idle RSS: the median VmRSS of the joiner (process + children, sampled every 50 ms) over the
     1 s before the join;
   - join: POST /_matrix/client/v3/join/{room}?server_name=A until its answer;
   - full state: then GET /rooms/{room}/joined_members until its answer, whose member count is
     checked. Synapse's /join returns after a PARTIAL-state join (MSC3706: member events left
     out) and fills the state in the background; its /joined_members waits for that. Ours
     joins with the full state, so both columns are shown and the goal is read on full state;
   - peak RSS: the maximum VmRSS from the join's start to the end of the full-state step;
   the user leaves (so A stops sending to it). Joiners stay up, idle, until the end: the room's
   state keeps their member events, and later joiners fetch their keys to check them.
Medians over repeats (min-max), ratio ours/Synapse, goal (join time at most Synapse's; peak RSS
is reported without a goal since the move to Quart + Hypercorn + httpx, issue 10: the memory
goal is the chat benchmark's) as a markdown table on stdout; every run's numbers into the JSON
file.
`--profile DIR` records our joins with py-spy (collapsed stacks, see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.interop.synapse_server
from _servers import ProcessWatch, free_port, start_dendrite  # noqa: E402
from chat import _cpus, start_profiler, stop_profiler  # noqa: E402

from tests.interop.synapse_server import SynapseServer, write_self_signed_cert  # noqa: E402

CLIENT = "/_matrix/client/v3"
ADMIN = "/_synapse/admin"
PASSWORD = "bench-password-123"
JOINERS = ("dendrite-lite", "synapse")
IDLE_S = 1.0


@dataclass(frozen=True)
class Options:
    members: int = 1000
    repeat: int = 3
    concurrency: int = 8
    warmup: bool = True


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def call(
    http: httpx.AsyncClient, method: str, path: str, token: str, body: Any = None,
    ok: tuple[int, ...] = (200,), **kw: Any
) -> dict[str, Any]:
    resp = await http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"}, **kw)
    if resp.status_code not in ok:
        raise RuntimeError(f"{method} {path} -> {resp.status_code}: {resp.text[:300]}")
    return dict(resp.json())


async def bounded(jobs: list[Any], limit: int) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(job: Any) -> None:
        async with sem:
            await job()

    await asyncio.gather(*(one(j) for j in jobs))


# --- 1. the room on host Synapse A -------------------------------------------------------------


async def build_room(host: SynapseServer, o: Options) -> tuple[str, dict[str, float]]:
    token = await asyncio.to_thread(host.admin)
    limits = httpx.Limits(max_connections=o.concurrency * 2)
    async with httpx.AsyncClient(base_url=host.base_url, verify=False, timeout=120, limits=limits) as http:
        room_id = (await call(http, "POST", f"{CLIENT}/createRoom", token,
                              {"preset": "public_chat", "name": f"{o.members} members"}))["room_id"]
        users = [f"@m{i}:{host.server_name}" for i in range(o.members)]
        start = time.monotonic()
        await bounded([
            lambda i=i, u=u: call(http, "PUT", f"{ADMIN}/v2/users/{quote(u)}", token,
                                  {"displayname": f"Member {i}"}, ok=(200, 201))
            for i, u in enumerate(users)
        ], o.concurrency)
        made = time.monotonic()
        log(f"  {len(users)} users in {made - start:.1f} s")
        await bounded([
            lambda u=u: call(http, "POST", f"{ADMIN}/v1/join/{quote(room_id)}", token, {"user_id": u})
            for u in users
        ], o.concurrency)
        joined = time.monotonic()
        log(f"  {len(users)} joins in {joined - made:.1f} s")
        total = (await call(http, "GET", f"{ADMIN}/v1/rooms/{quote(room_id)}/members", token))["total"]
        if total != o.members + 1:
            raise RuntimeError(f"the room has {total} members, not {o.members + 1}")
    return room_id, {"users_s": made - start, "joins_s": joined - made, "setup_s": joined - start}


# --- 3. one joiner -----------------------------------------------------------------------------


@dataclass
class Joiner:
    name: str
    pid: int
    base_url: str
    token: str
    user_id: str
    stop: Any  # () -> None


async def register_ours(base_url: str, localpart: str) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=base_url, verify=False, timeout=60) as http:
        body = {"username": localpart, "password": PASSWORD}
        first = await http.post(f"{CLIENT}/register", json=body)
        session = first.json()["session"]
        resp = await http.post(
            f"{CLIENT}/register", json={**body, "auth": {"type": "m.login.dummy", "session": session}}
        )
        resp.raise_for_status()
        return resp.json()["access_token"], resp.json()["user_id"]


def start_ours(workdir: Path) -> Joiner:
    certs = write_self_signed_cert(workdir / "tls")
    if certs is None:
        raise RuntimeError("cannot make a TLS certificate: no openssl and no cryptography")
    port = free_port()
    ours = start_dendrite(workdir, [
        f'server.server_name="127.0.0.1:{port}"', f'listen.federation="127.0.0.1:{port}"',
        "federation.enabled=true", "federation.verify_tls=false", "federation.trusted_key_servers=[]",
    ], tls=certs)
    try:
        ours.wait_ready()
        token, user_id = asyncio.run(register_ours(ours.base_url, "joiner"))
    except BaseException:
        ours.stop()
        raise
    return Joiner("dendrite-lite", ours.pid, ours.base_url, token, user_id, ours.stop)


def start_synapse_joiner(workdir: Path) -> tuple[Joiner, SynapseServer]:
    b = SynapseServer.start(workdir)
    try:
        login = b.register("joiner", PASSWORD)
        b.admin()
    except BaseException:
        b.stop()
        raise
    return Joiner("synapse", b.process.pid, b.base_url, login["access_token"], login["user_id"], b.stop), b


def wait_background_updates(b: SynapseServer, timeout_s: float = 180) -> float:
    """A fresh Synapse runs ~60 s of database background updates (index builds, with 1 s sleeps
    between batches); a long-running one has none. Wait until they are done; returns the wait."""
    start = time.monotonic()
    with b.http() as http:
        while time.monotonic() - start < timeout_s:
            status = http.get(f"{ADMIN}/v1/background_updates/status",
                              headers={"Authorization": f"Bearer {b.admin()}"}).json()
            if not any(status.get("current_updates", {}).values()):
                return time.monotonic() - start
            time.sleep(1)
    raise RuntimeError(f"Synapse {b.server_name} still runs background updates after {timeout_s} s")


async def measure_join(j: Joiner, host: SynapseServer, room_id: str, expected: int,
                       profile: Path | None) -> dict[str, float]:
    watch = ProcessWatch(j.pid)
    watch.start()
    spy = start_profiler(j.pid, profile) if profile is not None else None
    try:
        await asyncio.sleep(IDLE_S + 0.2)
        async with httpx.AsyncClient(base_url=j.base_url, verify=False, timeout=600) as http:
            t0 = time.monotonic()
            await call(http, "POST", f"{CLIENT}/join/{quote(room_id)}", j.token, {},
                       params={"server_name": host.server_name})
            t1 = time.monotonic()
            joined = (await call(http, "GET", f"{CLIENT}/rooms/{quote(room_id)}/joined_members", j.token))["joined"]
            t2 = time.monotonic()
            if len(joined) != expected or j.user_id not in joined:
                raise RuntimeError(f"{j.name} sees {len(joined)} joined members, not {expected}")
            await asyncio.sleep(0.1)  # one more sample
            await call(http, "POST", f"{CLIENT}/rooms/{quote(room_id)}/leave", j.token, {})
    finally:
        if spy is not None:
            stop_profiler(spy)
        watch.stop()
    idle = watch.rss_between(t0 - IDLE_S, t0)
    during = watch.rss_between(t0, t2 + 0.1)
    return {
        "join_s": t1 - t0,
        "full_state_s": t2 - t0,
        "idle_rss_mb": statistics.median(idle) / 1024,
        "peak_rss_mb": max(during) / 1024,
    }


def run_join(joiner: Joiner, host: SynapseServer, room_id: str, o: Options, run: str,
             profile_dir: Path | None) -> dict[str, float]:
    profile = None
    if profile_dir is not None and joiner.name == "dendrite-lite":
        profile_dir.mkdir(parents=True, exist_ok=True)
        profile = profile_dir / f"join-{run}.txt"
    return asyncio.run(measure_join(joiner, host, room_id, o.members + 2, profile))


# --- the report --------------------------------------------------------------------------------

# (key, label, goal on ours/Synapse as (op, factor) or None)
ROWS: list[tuple[str, str, tuple[str, float] | None]] = [
    ("full_state_s", "join until full state (s)", ("<=", 1.0)),
    ("join_s", "POST /join answered (s; Synapse: partial state)", None),
    ("peak_rss_mb", "peak RSS during the join (MB)", None),
    ("idle_rss_mb", "idle RSS before the join (MB)", None),
]


def _fmt(values: list[float]) -> str:
    med = statistics.median(values)
    digits = 2 if med < 10 else 1
    if min(values) == max(values):
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def render_table(runs: dict[str, list[dict[str, float]]]) -> str:
    lines = ["| metric | dendrite-lite | Synapse | ours / Synapse | goal | met |", "|---|---|---|---|---|---|"]
    for key, label, goal in ROWS:
        ours = [r[key] for r in runs["dendrite-lite"]]
        theirs = [r[key] for r in runs["synapse"]]
        ratio = statistics.median(ours) / statistics.median(theirs)
        row = [label, _fmt(ours), _fmt(theirs), f"{ratio:.2f}"]
        if goal is None:
            row += ["", ""]
        else:
            op, factor = goal
            row += [f"{op} {factor:.2f}", "yes" if ratio <= factor else "**NO**"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=Options.members)
    ap.add_argument("--repeat", type=int, default=Options.repeat)
    ap.add_argument("--concurrency", type=int, default=Options.concurrency,
                    help="admin API requests in flight while building the room")
    ap.add_argument("--no-warmup", action="store_true", help="skip the unmeasured first join")
    ap.add_argument("--json", type=Path, default=Path("federation-results.json"))
    ap.add_argument("--profile", type=Path, default=None,
                    help="py-spy our joins into this directory (skews our numbers)")
    ap.add_argument("--keep", type=Path, default=None, help="copy every server's config and logs here")
    args = ap.parse_args()
    o = Options(args.members, args.repeat, args.concurrency, not args.no_warmup)
    # Every joiner stays up (idle, having left the room) until the end: the room's state keeps
    # its member events, and a later joiner verifying them fetches its key from it.
    alive: list[Joiner] = []
    with tempfile.TemporaryDirectory(prefix="bench-fed-") as tmp:
        work = Path(tmp)
        log("host Synapse A ...")
        host = SynapseServer.start(work / "host")
        try:
            # Synapse joiners first: their start-up background updates run while A fills the room.
            log(f"{o.repeat} joining Synapses (B) ...")
            synapses = []
            for rep in range(o.repeat):
                joiner, b = start_synapse_joiner(work / f"synapse-{rep + 1}")
                alive.append(joiner)
                synapses.append((joiner, b))
            log(f"room with {o.members} members ...")
            room_id, setup = asyncio.run(build_room(host, o))
            if o.warmup:
                log("warm-up join (unmeasured) ...")
                warm = start_ours(work / "warmup")
                alive.append(warm)
                run_join(warm, host, room_id, o, "warmup", None)
            runs: dict[str, list[dict[str, float]]] = {n: [] for n in JOINERS}
            for rep in range(o.repeat):
                order = JOINERS if rep % 2 == 0 else JOINERS[::-1]
                for name in order:
                    log(f"[run {rep + 1}/{o.repeat}] {name} joins ...")
                    if name == "synapse":
                        joiner, b = synapses[rep]
                        waited = wait_background_updates(b)
                        if waited > 1:
                            log(f"  (waited {waited:.0f} s for its background updates)")
                    else:
                        joiner = start_ours(work / f"ours-{rep + 1}")
                        alive.append(joiner)
                    m = run_join(joiner, host, room_id, o, str(rep + 1), args.profile)
                    runs[name].append(m)
                    log("  " + ", ".join(f"{k}={v:.2f}" for k, v in m.items()))
        finally:
            for joiner in alive:
                joiner.stop()
            host.stop()
            if args.keep is not None:
                shutil.copytree(work, args.keep, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("*.db*", "media", "data"))
    table = render_table(runs)
    print(f"Setup: {o.members} users in {setup['users_s']:.1f} s, {o.members} joins in "
          f"{setup['joins_s']:.1f} s (host Synapse A, admin APIs).\n")
    print(table)
    args.json.write_text(json.dumps({
        "options": asdict(o),
        "setup": setup,
        "machine": {"cpus": _cpus(), "python": platform.python_version(), "platform": platform.platform()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runs": runs,
        "table": table,
    }, indent=2))
    log(f"\nraw numbers: {args.json}")


if __name__ == "__main__":
    main()
