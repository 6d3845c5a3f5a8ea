"""Throughput of push rule evaluation: one message evaluated for every member of a 50-member room.

Run: .venv/bin/python -m tests.unit.push.bench_evaluator
Not collected by pytest (no test_ prefix); timings are machine-dependent.
"""

from __future__ import annotations

import time

from dendrite_lite.push import compiled_for_user, evaluate, prepare_event

MEMBERS = [f"@user{i}:example.org" for i in range(50)]
POWER_LEVELS = {"users": {MEMBERS[0]: 100}, "notifications": {"room": 50}}


def _message(i: int) -> dict[str, object]:
    return {
        "type": "m.room.message",
        "event_id": f"$ev{i}",
        "room_id": "!room:example.org",
        "sender": MEMBERS[i % 50],
        "content": {"msgtype": "m.text", "body": f"hello number {i}, how are you all doing?",
                    "m.mentions": {"user_ids": [MEMBERS[(i + 1) % 50]]}},
    }


def _round(batch: list[dict[str, object]]) -> tuple[float, int]:
    start = time.process_time()
    notified = 0
    for event in batch:
        prepared = prepare_event(event)
        for member in MEMBERS:
            rules = compiled_for_user(member, {})  # what a service does: cached by content
            actions = evaluate(rules, prepared, user_id=member, room_member_count=50,
                               sender_power_level=0, power_levels_content=POWER_LEVELS)
            notified += actions.notify
    return time.process_time() - start, notified


def run(events: int = 1000, rounds: int = 7) -> None:
    batch = [_message(i) for i in range(events)]
    # Best of several rounds of CPU time: the machine may be busy with other work.
    elapsed, notified = min(_round(batch) for _ in range(rounds))
    evaluations = events * len(MEMBERS)
    print(f"{events} events x {len(MEMBERS)} members = {evaluations} evaluations, best of {rounds}")
    print(f"  {events / elapsed:,.0f} events/s, {elapsed / evaluations * 1e6:.2f} us per member "
          f"({notified} notifications)")


if __name__ == "__main__":
    run()
