"""An index of the auth DAG that answers auth chains and auth differences without walking it.

Every event gets a position (chain, seq) on a chain: a path through the auth DAG in which each
event has the one before it (seq - 1) among its auth ancestors. Its reach maps chains to the
highest seq among the event itself and its auth ancestors on that chain. Because a chain is a
path, every event of chain c with seq <= reach[c] is an auth ancestor of the event (or the event
itself), and every ancestor is on some chain of the reach. So:

- the auth chain of a set of events (the events included) is, per chain, seqs 1..max reach;
- the auth difference of state sets (fragments/v2-state-res.md §Auth difference) is, per chain,
  the seqs above the lowest and up to the highest of the sets' reaches.

This is the idea of Synapse's chain cover index (docs/auth_chain_difference_algorithm.md), with
the reach stored per event (transitively) instead of links between chains followed at query
time: in the usual room shape (members citing create, power levels and join rules) a reach has
two or three chains, so a set of 10,000 state events merges in one grouped query.

Pure: the storage module (storage/auth_chains.py) persists positions and reaches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "ChainPosition",
    "ChainAllocator",
    "Reach",
    "merge_reaches",
    "difference_ranges",
]

Reach = Mapping[int, int]  # chain id -> highest seq reached


@dataclass(frozen=True, slots=True)
class ChainPosition:
    chain_id: int
    seq: int
    reach: Reach  # includes chain_id -> seq


def merge_reaches(reaches: Iterable[Reach]) -> dict[int, int]:
    """The reach of a set of events: per chain, the highest seq any of them reaches."""
    out: dict[int, int] = {}
    for r in reaches:
        for chain, seq in r.items():
            if out.get(chain, 0) < seq:
                out[chain] = seq
    return out


class ChainAllocator:
    """Places new events, each after its auth events (auth order), on chains.

    `heads`: chain id -> highest seq used so far, for (at least) the chains the auth events of
    the new events are on; a chain missing there is treated as having a later event, which is
    always safe (the event then starts a chain). `next_chain`: the first unused chain id.
    """

    __slots__ = ("_heads", "_next")

    def __init__(self, heads: Mapping[int, int], next_chain: int) -> None:
        self._heads = dict(heads)
        self._next = next_chain

    def place(self, auth: Sequence[ChainPosition]) -> ChainPosition:
        """The position of an event whose auth events are at `auth`.

        It extends the chain of an auth event that is its chain's last event (the longest such
        chain, to keep chains few); if none is, it starts a new chain. Either way the previous
        event of its chain is one of its auth events, which keeps the chain a path.
        """
        best: ChainPosition | None = None
        for a in auth:
            if self._heads.get(a.chain_id) == a.seq and (
                best is None or (a.seq, -a.chain_id) > (best.seq, -best.chain_id)
            ):
                best = a
        if best is not None:
            chain, seq = best.chain_id, best.seq + 1
        else:
            chain, seq = self._next, 1
            self._next += 1
        self._heads[chain] = seq
        reach = merge_reaches(a.reach for a in auth)
        reach[chain] = seq
        return ChainPosition(chain, seq, reach)


def difference_ranges(set_reaches: Sequence[Reach]) -> list[tuple[int, int, int]]:
    """The auth difference of sets of events given each set's merged reach, as ranges
    (chain, low, high): the events of `chain` with low < seq <= high are in the auth chain of
    some set but not of all."""
    if not set_reaches:
        return []
    chains: set[int] = set()
    for r in set_reaches:
        chains.update(r)
    out = []
    for chain in sorted(chains):
        seqs = [r.get(chain, 0) for r in set_reaches]
        low, high = min(seqs), max(seqs)
        if low < high:
            out.append((chain, low, high))
    return out
