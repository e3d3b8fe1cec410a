"""What an attacker saw, on disk: the public record beside the message log, and ground truth
apart; row m of a payload is row m of the record."""

from __future__ import annotations

import numpy as np
import torch

from asfed.agents.storage import AgentStore
from asfed.comm import record
from asfed.comm.log import read_log
from asfed.config import build_config
from asfed.engine.driver import resume, start, train
from asfed.engine.flower.federation import flower_federation
from asfed.engine.loop import Simulation
from asfed.envs import make_vec_env
from asfed.envs.navigation import NavigationState
from tests.engine.inprocess_grid import InProcessGrid


def run(tmp_path, name, federation=None, rounds=3, **cfg):
    cfg = build_config(
        **{
            "env": "navigation",
            "method": "as",
            "seed": 6,
            "episodes": 2,
            "rounds": rounds,
            "log_every": 1,
            "checkpoint_every": 1,
            **cfg,
        }
    )
    sim, folder, rows = start(cfg, tmp_path / name, federation, private_seed=11)
    train(sim, folder, rows)
    return folder.path


def test_a_payload_row_is_the_record_row_it_was_computed_on(tmp_path) -> None:
    """Recompute round 1's shared pi^00 from agent 0's own checkpoint after round 1 (the policy
    that shared at round 1's first step) on the recorded states: the same numbers."""
    path = run(tmp_path, "r", rounds=2)
    assert record.logged_rounds(path) == [0, 1] == record.logged_rounds(path, record.TRUTH)
    rec = record.read_public(path, 1)
    shared = read_log(path, kind="policy_dist", rounds=(1, 2))
    sent = next(m for m in shared if m.sender == 0 and m.step == 0)
    assert sent.payload.shape == (rec.num_rows, 5)
    agent = Simulation(
        build_config(env="navigation", method="as", episodes=2), private_seed=11
    ).federation.agents[0]
    agent.load_state_dict(AgentStore(path / "agents" / "agent_0").load_checkpoint(1))
    with torch.no_grad():
        again = torch.softmax(agent.acting_logits(torch.as_tensor(rec.row_obs())), -1).numpy()
    np.testing.assert_allclose(sent.payload, again, rtol=1e-5, atol=1e-6)


def test_the_record_holds_states_that_give_back_the_features_and_truth_is_apart(tmp_path) -> None:
    path = run(tmp_path, "r", rounds=1)
    rec = record.read_public(path, 0)
    truth = np.load(path / record.TRUTH / "round_000000.npz")
    params = np.load(path / record.TRUTH / "params.npz")
    assert set(np.load(path / record.PUBLIC / "round_000000.npz").files).isdisjoint(
        {"rewards", "features", "reward_weights"}
    )
    env = make_vec_env("navigation", 2, seed=123)  # another seed: other private parameters
    t = 5
    feats = env.reward_features(rec.env_state(t, NavigationState), rec.actions[:, t], private={})
    np.testing.assert_allclose(feats, truth["features"][:, t])
    rewards = np.einsum("btnd,nd->btn", truth["features"], params["reward_weights"])
    np.testing.assert_allclose(rewards, truth["rewards"])


def test_records_survive_resume_and_match_the_flower_engine(tmp_path) -> None:
    full = run(tmp_path, "full", rounds=3)
    flower = run(tmp_path, "flower", flower_federation(InProcessGrid(3)), rounds=3)
    cut = run(tmp_path, "cut", rounds=2)
    (cut / "checkpoint.pt").unlink()  # as if it crashed after round 1's checkpoint...
    (tmp_path / "one").mkdir()
    one = run(tmp_path, "one/r", rounds=1)
    (one / "checkpoint.pt").rename(cut / "checkpoint.pt")
    sim, folder, rows = resume(cut, 3)
    train(sim, folder, rows)
    for other in (flower, cut):
        for kind in (record.PUBLIC, record.TRUTH):
            names = sorted(p.name for p in (full / kind).iterdir())
            assert names == sorted(p.name for p in (other / kind).iterdir())
            for name in names:
                if not name.endswith(".npz"):  # the private seed, in the ground truth
                    assert (full / kind / name).read_bytes() == (other / kind / name).read_bytes()
                    continue
                a, b = np.load(full / kind / name), np.load(other / kind / name)
                assert a.files == b.files
                for key in a.files:
                    np.testing.assert_array_equal(a[key], b[key])
