"""Benchmark: end-to-end encryption key exchange against dendrite-lite and Synapse (issue 13).

    .venv/bin/python bench/key_exchange.py [--repeat 3] [--servers dendrite-lite,synapse]
                                           [--json key-exchange-results.json] [--keep DIR]

Per server and repeat, on a fresh server (subprocess, SQLite, plain HTTP on 127.0.0.1, rate
limits off; the same setup as bench/chat.py, see bench/_servers.py):
  setup (timed, no goal): register 50 users and log each in once more (2 devices each); user 0
     creates an encrypted room (m.room.encryption in its initial state); the other 49 join;
  1. upload: each of the 100 devices POSTs /keys/upload: its device keys signed with its ed25519
     key, 50 signed one-time keys and a fallback key (real vodozemac accounts; every body is
     built before the clock starts);
  2. exchange: each user, 16 at a time, from its first device, as a client opening Olm sessions:
     /keys/query for the room's 50 members; /keys/claim of one signed_curve25519 key for each of
     the other 49 users' 98 devices (one request); PUT /sendToDevice with an Olm-shaped
     m.room.encrypted for each of those 98 devices (one request); PUT an m.room.encrypted event
     (Megolm-shaped) into the room. Ciphertexts are random bytes of realistic size: the server
     only stores and relays them, so real encryption would only load the client;
  3. check (timed, no goal): each device /syncs once (timeline limit 1) and must hold exactly 49
     to-device messages (one per other user) and 1 unclaimed one-time key: both servers did the
     whole exchange, and no claim handed out a key twice.
*key exchange* = upload + exchange (the goal: no slower than Synapse); *peak RSS during the key
exchange* = max VmRSS over those two phases (the goal: at most 0.5x), beside the peak over the
whole run (setup included: password hashing is memory-hard by design).
Servers alternate order between repeats; medians (min-max) over repeats, ours/Synapse, goal.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import vodozemac
from signedjson.sign import encode_canonical_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _client import CLIENT, Homeserver, User, _q
from _compare import compare
from _servers import ProcessWatch, ServerProcess
from chat import PASSWORD, Row, _client_cpu_s, bounded, pct

OLM = "m.olm.v1.curve25519-aes-sha2"
MEGOLM = "m.megolm.v1.aes-sha2"
OLM_BODY_BYTES = 620  # an Olm pre-key message carrying an m.room_key (~830 base64 characters)
MEGOLM_BODY_BYTES = 230  # a Megolm message of a short text


@dataclass(frozen=True)
class Workload:
    users: int = 50
    one_time_keys: int = 50
    concurrency: int = 16
    seed: int = 13


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


@dataclass
class Device:
    """A logged-in device and its Olm account (keys only: nothing is really encrypted)."""

    user: User
    account: vodozemac.Account

    @property
    def curve25519(self) -> str:
        return str(self.account.curve25519_key.to_base64())

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        signature = self.account.sign(encode_canonical_json(obj)).to_base64()
        return {**obj, "signatures": {self.user.user_id: {f"ed25519:{self.user.device_id}": signature}}}

    def upload_body(self, one_time_keys: int) -> dict[str, Any]:
        device_id = self.user.device_id
        self.account.generate_one_time_keys(one_time_keys)
        self.account.generate_fallback_key()
        otks = {
            f"signed_curve25519:{kid}": self.sign({"key": key.to_base64()})
            for kid, key in self.account.one_time_keys.items()
        }
        ((fid, fkey),) = self.account.fallback_key.items()
        self.account.mark_keys_as_published()
        return {
            "device_keys": self.sign({
                "user_id": self.user.user_id,
                "device_id": device_id,
                "algorithms": [OLM, MEGOLM],
                "keys": {
                    f"curve25519:{device_id}": self.curve25519,
                    f"ed25519:{device_id}": self.account.ed25519_key.to_base64(),
                },
            }),
            "one_time_keys": otks,
            "fallback_keys": {
                f"signed_curve25519:{fid}": self.sign({"key": fkey.to_base64(), "fallback": True})
            },
        }


async def _post(user: User, path: str, body: dict[str, Any]) -> dict[str, Any]:
    return await user.hs.request("POST", f"{CLIENT}{path}", token=user.token, body=body)


async def _put(user: User, path: str, body: dict[str, Any]) -> dict[str, Any]:
    return await user.hs.request("PUT", f"{CLIENT}{path}", token=user.token, body=body)


async def _setup(hs: Homeserver, w: Workload) -> tuple[list[list[Device]], str]:
    """Users with 2 devices each (first registered, then logged in) and the encrypted room."""
    names = [f"user{i:03d}" for i in range(w.users)]
    firsts = await bounded((functools.partial(hs.register, n, PASSWORD) for n in names), w.concurrency)
    seconds = await bounded((functools.partial(hs.login, n, PASSWORD) for n in names), w.concurrency)
    room_id = await firsts[0].create_room({
        "preset": "public_chat",
        "initial_state": [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}],
    })
    await bounded((functools.partial(u.join, room_id) for u in firsts[1:]), w.concurrency)
    devices = [[Device(a, vodozemac.Account()), Device(b, vodozemac.Account())]
               for a, b in zip(firsts, seconds)]
    return devices, room_id


def _to_device_body(sender: Device, targets: list[Device], rng: random.Random) -> dict[str, Any]:
    messages: dict[str, dict[str, Any]] = {}
    for target in targets:
        messages.setdefault(target.user.user_id, {})[target.user.device_id] = {
            "algorithm": OLM,
            "sender_key": sender.curve25519,
            "ciphertext": {target.curve25519: {"type": 0, "body": _b64(rng.randbytes(OLM_BODY_BYTES))}},
        }
    return {"messages": messages}


async def _exchange(
    me: Device, others: list[Device], members: list[str], room_id: str, rng: random.Random,
    latency: dict[str, list[float]],
) -> None:
    """One user opening Olm sessions with every other user's devices and sending a message."""

    async def timed(what: str, call: Any) -> dict[str, Any]:
        start = time.perf_counter()
        result: dict[str, Any] = await call
        latency[what].append(time.perf_counter() - start)
        return result

    user = me.user
    await timed("query", _post(user, "/keys/query", {"device_keys": {m: [] for m in members}}))
    wanted: dict[str, dict[str, str]] = {}
    for d in others:
        wanted.setdefault(d.user.user_id, {})[d.user.device_id] = "signed_curve25519"
    claimed = await timed("claim", _post(user, "/keys/claim", {"one_time_keys": wanted}))
    got = sum(len(by_device) for by_device in claimed["one_time_keys"].values())
    if got != len(others):
        raise RuntimeError(f"{user.user_id} claimed {got} keys of {len(others)} devices")
    user.txn_counter += 1
    await timed("to_device", _put(
        user, f"/sendToDevice/m.room.encrypted/k{user.txn_counter}", _to_device_body(me, others, rng)
    ))
    content = {
        "algorithm": MEGOLM, "sender_key": me.curve25519, "device_id": user.device_id,
        "session_id": _b64(rng.randbytes(32)), "ciphertext": _b64(rng.randbytes(MEGOLM_BODY_BYTES)),
    }
    await timed("send", _put(
        user, f"/rooms/{_q(room_id)}/send/m.room.encrypted/k{user.txn_counter}", content
    ))


async def _check(device: Device, w: Workload) -> None:
    body = await device.user.sync(filter_json='{"room":{"timeline":{"limit":1}}}')
    to_device = body.get("to_device", {}).get("events", [])
    left = body.get("device_one_time_keys_count", {}).get("signed_curve25519")
    others = w.users - 1
    if len(to_device) != others or left != w.one_time_keys - others:
        raise RuntimeError(
            f"{device.user.user_id}/{device.user.device_id}: {len(to_device)} to-device messages"
            f" (want {others}), {left} one-time keys left (want {w.one_time_keys - others})"
        )


async def run_workload(
    server: ServerProcess, w: Workload, watch: ProcessWatch, profile: Path | None = None
) -> dict[str, Any]:
    m: dict[str, Any] = {}
    await asyncio.sleep(2.0)  # let startup work settle, as bench/chat.py does
    t0 = time.monotonic()
    await asyncio.sleep(1.0)
    m["idle_rss_mib"] = statistics.median(watch.rss_between(t0, time.monotonic())) / 1024
    hs = Homeserver(server.base_url, max_connections=w.concurrency + 4)
    load_start = time.monotonic()
    try:
        t = time.perf_counter()
        devices, room_id = await _setup(hs, w)
        m["setup_s"] = time.perf_counter() - t
        flat = [d for pair in devices for d in pair]
        bodies = [d.upload_body(w.one_time_keys) for d in flat]
        rng = random.Random(w.seed)
        members = [pair[0].user.user_id for pair in devices]
        latency: dict[str, list[float]] = {"query": [], "claim": [], "to_device": [], "send": []}

        exchange_start = time.monotonic()
        cpu, client_cpu = watch.cpu_s(), _client_cpu_s()
        t = time.perf_counter()
        await bounded(
            (functools.partial(_post, d.user, "/keys/upload", b) for d, b in zip(flat, bodies)),
            w.concurrency,
        )
        m["upload_s"] = time.perf_counter() - t
        upload_end = time.monotonic()
        t = time.perf_counter()
        await bounded(
            (functools.partial(
                _exchange, pair[0], [d for other in devices if other is not pair for d in other],
                members, room_id, rng, latency,
            ) for pair in devices),
            w.concurrency,
        )
        m["exchange_s"] = time.perf_counter() - t
        exchange_end = time.monotonic()
        m["key_exchange_s"] = m["upload_s"] + m["exchange_s"]
        m["key_exchange_cpu_s"] = watch.cpu_s() - cpu
        m["client_cpu_share"] = (_client_cpu_s() - client_cpu) / (exchange_end - exchange_start)
        for what, values in latency.items():
            m[f"{what}_p50_ms"] = pct(values, 50) * 1000

        t = time.perf_counter()
        await bounded((functools.partial(_check, d, w) for d in flat), w.concurrency)
        m["check_s"] = time.perf_counter() - t
    finally:
        await hs.aclose()
    m["peak_rss_exchange_mib"] = max(watch.rss_between(exchange_start, exchange_end)) / 1024
    # In the JSON only: which of the two phases makes the peak.
    m["peak_rss_upload_mib"] = max(watch.rss_between(exchange_start, upload_end)) / 1024
    m["rss_before_exchange_mib"] = watch.rss_between(load_start, exchange_start)[-1] / 1024
    m["peak_rss_mib"] = max(watch.rss_between(load_start, time.monotonic())) / 1024
    return m


def rows(w: Workload) -> list[Row]:
    n = w.users
    return [
        ("key_exchange_s", "key exchange: upload + exchange (s)", 2, ("<=", 1)),
        ("upload_s", f"upload keys, {2 * n} devices (s)", 2, None),
        ("exchange_s", f"exchange, {n} users x {2 * (n - 1)} devices (s)", 2, None),
        ("query_p50_ms", f"/keys/query of {n} users p50 (ms)", 1, None),
        ("claim_p50_ms", f"/keys/claim of {2 * (n - 1)} devices p50 (ms)", 1, None),
        ("to_device_p50_ms", f"/sendToDevice to {2 * (n - 1)} devices p50 (ms)", 1, None),
        ("send_p50_ms", "send m.room.encrypted p50 (ms)", 1, None),
        ("peak_rss_exchange_mib", "peak RSS during the key exchange (MiB)", 1, ("<=", 0.5)),
        ("peak_rss_mib", "peak RSS, whole run incl. setup (MiB)", 1, None),
        ("idle_rss_mib", "idle RSS before the run (MiB)", 1, None),
        ("key_exchange_cpu_s", "server CPU during the key exchange (s)", 2, None),
        ("check_s", f"check: {2 * n} device syncs (s)", 2, None),
        ("setup_s", f"setup: {n} users x 2 devices, {n}-member room (s)", 2, None),
        ("client_cpu_share", "bench client CPU during the key exchange (cores)", 2, None),
    ]


def main() -> None:
    compare(
        __doc__ or "", Workload, run_workload, rows, "key-exchange-results.json",
        check=lambda w: "--one-time-keys must cover one claim by every other user"
        if w.one_time_keys < w.users - 1 else None,
    )


if __name__ == "__main__":
    main()
