"""JaxMARL's own IPPO as shipped, timed: `baselines/IPPO/ippo_ff_mpe.py` with its own config.

Runs in the benchmark's environment (`benchmarks/peer/setup.sh`) against a JaxMARL checkout
(`--repo`; the file is read from there, unmodified, never copied into asfed) and prints one JSON
line. Its `make_train` is jitted once, run once (compile and warm-up), then run again and timed:
the second run's env steps over its seconds. Only TOTAL_TIMESTEPS is changed (to `--updates`
updates); one seed, as `make_train` trains (the shipped `main` vmaps 10). Logging goes to a
disabled wandb run, as the shipped config's WANDB_MODE says.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import wandb
from omegaconf import OmegaConf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, help="a JaxMARL checkout")
    parser.add_argument("--updates", type=int, default=20, help="updates in the timed run")
    args = parser.parse_args()
    folder = Path(args.repo) / "baselines" / "IPPO"
    sys.path.insert(0, str(folder))
    import ippo_ff_mpe as shipped  # the baseline, as it is in the checkout

    config = OmegaConf.to_container(OmegaConf.load(folder / "config" / "ippo_ff_mpe.yaml"))
    per_update = config["NUM_ENVS"] * config["NUM_STEPS"]
    config["TOTAL_TIMESTEPS"] = args.updates * per_update
    wandb.init(mode="disabled")
    train = jax.jit(shipped.make_train(config))
    key = jax.random.PRNGKey(config["SEED"])
    start = time.perf_counter()
    jax.block_until_ready(train(key))
    first = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(train(key))
    seconds = time.perf_counter() - start
    env = shipped.jaxmarl.make(config["ENV_NAME"], **config["ENV_KWARGS"])
    print(
        json.dumps(
            {
                "env_steps_per_s": args.updates * per_update / seconds,
                "seconds_per_update": seconds / args.updates,
                "env_steps_per_update": per_update,
                "first_run_s": first,
                "config": {
                    k: config[k]
                    for k in (
                        "NUM_ENVS",
                        "NUM_STEPS",
                        "UPDATE_EPOCHS",
                        "NUM_MINIBATCHES",
                        "ACTIVATION",
                        "ENV_NAME",
                    )
                },
                "obs_dim": int(env.observation_space(env.agents[0]).shape[0]),
                "actions": int(env.action_space(env.agents[0]).n),
                "agents": env.num_agents,
                "devices": [str(d) for d in jax.devices()],
            }
        )
    )


if __name__ == "__main__":
    main()
