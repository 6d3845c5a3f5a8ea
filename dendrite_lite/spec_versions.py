"""The Matrix spec versions this server implements (one place for /versions and the CLI)."""

from __future__ import annotations

__all__ = ["SUPPORTED_VERSIONS"]

# r0.6.1 because some older clients and bots still look for it; v1.1+ are the stable versions whose
# endpoints this server targets.
SUPPORTED_VERSIONS: tuple[str, ...] = ("r0.6.1",) + tuple(f"v1.{minor}" for minor in range(1, 13))
