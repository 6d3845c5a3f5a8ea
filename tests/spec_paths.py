"""Where the Matrix spec copy lives: $MATRIX_SPEC_DIR (scripts/test.sh sets it, see
scripts/matrix-spec.sh), else ../shared/matrix-spec beside the repository (as in CI)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SPEC_DIR", "CS_API_DIR", "SS_API_DIR"]

SPEC_DIR = Path(
    os.environ.get("MATRIX_SPEC_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "matrix-spec"
)
CS_API_DIR = SPEC_DIR / "data" / "api" / "client-server"
SS_API_DIR = SPEC_DIR / "data" / "api" / "server-server"
