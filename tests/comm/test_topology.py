"""Neighbour topologies: shapes, symmetry, reproducibility, every-k."""

from __future__ import annotations

import numpy as np
import pytest

from asfed.comm.topology import TOPOLOGIES, make_topology
from asfed.errors import AsfedError


def graph(name: str, n: int, round_: int = 0, seed: int = 0, positions=None, every: int = 1):
    return make_topology(name, n, every).neighbours(round_, np.random.default_rng(seed), positions)


def test_full_line_ring() -> None:
    assert graph("full", 3) == [frozenset({1, 2}), frozenset({0, 2}), frozenset({0, 1})]
    assert graph("line", 4) == [
        frozenset({1}),
        frozenset({0, 2}),
        frozenset({1, 3}),
        frozenset({2}),
    ]
    assert graph("ring", 4)[0] == frozenset({1, 3})
    assert graph("ring", 2) == [frozenset({1}), frozenset({0})]


@pytest.mark.parametrize("name", ["full", "line", "ring", "random-one"])
def test_graphs_are_symmetric_and_irreflexive(name: str) -> None:
    for seed in range(5):
        g = graph(name, 7, seed=seed)
        for i, peers in enumerate(g):
            assert i not in peers
            assert all(i in g[j] for j in peers)
            assert peers <= make_topology(name, 7).potential(i)


def test_random_one_picks_a_peer_each_round_reproducibly() -> None:
    topo = make_topology("random-one", 8)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    rounds_a = [topo.neighbours(r, rng_a) for r in range(20)]
    rounds_b = [topo.neighbours(r, rng_b) for r in range(20)]
    assert rounds_a == rounds_b
    assert all(len(p) >= 1 for g in rounds_a for p in g)
    assert len({tuple(g) for g in rounds_a}) > 1  # it changes between rounds


def test_distance_is_per_step_with_the_rows_where_pairs_were_close() -> None:
    # positions on M=3 states, N=3: 0 and 1 meet (distance 2 <= 3) only on state 1; 2 stays away.
    x = np.array([[0.0, 10.0, 25.0], [5.0, 7.0, 25.0], [0.0, 12.0, 25.0]])
    g = graph("distance", 3, positions=x)
    assert g == [frozenset({1}), frozenset({0}), frozenset()]
    assert g.rows_of(0, 1).tolist() == [1] and g.rows_of(1, 0).tolist() == [1]
    assert g.mean_degree() == pytest.approx(2 / 9)  # two directed links on one of three states
    with pytest.raises(AsfedError, match="needs agent positions"):
        graph("distance", 3)


def test_distance_degree_per_step_is_far_below_the_round_union() -> None:
    """With many states a round, nearly every pair meets somewhere (the union is full), while
    per step each predator has few neighbours."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 30, size=(3000, 8))
    g = graph("distance", 8, positions=x)
    assert all(len(s) == 7 for s in g)  # the union over the round: full
    assert 1.0 < g.mean_degree() < 2.0  # per step: about 2 * 0.1 * 7 = 1.3


def test_every_k_communicates_only_on_multiples_of_k() -> None:
    topo = make_topology("full", 3, every=3)
    rng = np.random.default_rng(0)
    sizes = [sum(len(p) for p in topo.neighbours(r, rng)) for r in range(7)]
    assert sizes == [6, 0, 0, 6, 0, 0, 6]
    with pytest.raises(AsfedError, match=r"every=0 is invalid"):
        make_topology("full", 3, every=0)


def test_unknown_topology() -> None:
    with pytest.raises(AsfedError, match=r"unknown topology 'star'; accepted: distance, full"):
        TOPOLOGIES.get("star")
