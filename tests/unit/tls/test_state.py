from __future__ import annotations

import stat
from pathlib import Path

from dendrite_lite.tls.state import STATE_FILE, AcmeState, load_state, save_state


def test_state_round_trips_and_is_private(tmp_path: Path) -> None:
    acme_dir = tmp_path / "acme"
    state = AcmeState(
        names=("matrix.example.org",), issuer="CN=Pebble", not_after=2.5e9,
        ari_window=(1.0, 2.0), last_error="", failures=0, extra={"future_field": 1},
    )
    save_state(acme_dir, state)
    assert load_state(acme_dir) == state
    assert stat.S_IMODE((acme_dir / STATE_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(acme_dir.stat().st_mode) == 0o700
    assert not list(acme_dir.glob(".*.tmp"))


def test_missing_or_broken_state_reads_as_empty(tmp_path: Path) -> None:
    assert load_state(tmp_path) == AcmeState()
    (tmp_path / STATE_FILE).write_text("{not json")
    assert load_state(tmp_path) == AcmeState()
    (tmp_path / STATE_FILE).write_text('{"failures": "x", "names": 3}')
    assert load_state(tmp_path) == AcmeState()
