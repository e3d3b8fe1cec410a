"""Reference returns: the numbers the README's scripted table states, and the right best policy."""

from __future__ import annotations

import pytest

from asfed.envs.references import reference_returns


def test_exchange_references_are_the_designed_fixed_points() -> None:
    refs = reference_returns("exchange", episodes=64)
    assert refs["optimum"].mean == pytest.approx(6.0, abs=0.01)
    assert refs["defect"].mean == pytest.approx(-9.0, abs=1e-9)
    assert 2.0 < refs["random"].mean < 6.0  # README: 4.2 +- 4.0


def test_predation_optimum_is_the_better_scripted_profile_for_the_agent_count() -> None:
    two = reference_returns("predation", {"num_agents": 2}, episodes=1024)
    eight = reference_returns("predation", {"num_agents": 8}, episodes=1024)
    assert two["optimum"].label == "all pursue" and eight["optimum"].label == "one pursues"
    assert eight["optimum"].mean == pytest.approx(-38.3, abs=3)  # README's scripted table
    assert eight["defect"].mean < eight["random"].mean < eight["optimum"].mean


def test_options_change_the_references_and_envs_lack_what_they_lack() -> None:
    short = reference_returns("navigation", {"horizon": 10}, episodes=64)
    full = reference_returns("navigation", episodes=64)
    assert short["random"].mean > full["random"].mean  # fewer steps, less distance paid
    assert full["random"].mean < full["optimum"].mean <= 0
    assert "defect" not in full and "optimum" not in reference_returns("harvest", episodes=8)
    cleanup = reference_returns("cleanup", episodes=32)
    assert cleanup["defect"].mean == 0.0 < cleanup["optimum"].mean  # the free-rider dilemma
