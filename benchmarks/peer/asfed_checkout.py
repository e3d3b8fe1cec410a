"""Rounds of another asfed checkout, timed by that checkout's own `benchmarks/train_speed.py`.

`peer_speed.py --start CHECKOUT` runs this under `PYTHONPATH=CHECKOUT`, so a speed goal stated
against an earlier commit ("2.5x the 9,042 env steps/s AS ran at") is measured on this machine,
in the same run as today's code: this machine's speed drifts within a run and between runs, so
a number from another day is no baseline. The checkout's own `time_rounds` and `round_flops` are
used (the code of that day, timed the way it timed itself); the signatures called are those of
the issue's start (cfg, workers, rounds), which later versions keep. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", required=True, help="the asfed checkout timed")
    parser.add_argument("--env", default="navigation")
    parser.add_argument("--method", required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--flops", action="store_true", help="also count a round's FLOPs")
    args = parser.parse_args()
    checkout = Path(args.checkout).resolve()
    sys.path.insert(0, str(checkout / "benchmarks"))
    import asfed  # after the path is set

    where = Path(asfed.__file__).resolve()
    if checkout not in where.parents:  # timing the wrong code would be silently wrong
        sys.exit(f"asfed imported from {where}, not from {checkout}: set PYTHONPATH={checkout}")
    # The checkout's workers are fresh interpreters: before asfed.interpreters (an older
    # checkout such as the start) they were `python -m`, which imports asfed from the working
    # directory first; started elsewhere (from today's checkout) they ran today's code.
    os.chdir(checkout)
    import train_speed  # the checkout's own

    if checkout not in Path(train_speed.__file__).resolve().parents:
        sys.exit(f"train_speed imported from {train_speed.__file__}, not from {checkout}")
    round_flops, time_rounds = train_speed.round_flops, train_speed.time_rounds

    from asfed.config import build_config
    from asfed.engine.loop import prepare

    cfg = build_config(env=args.env, method=args.method, engine="local")
    steps = cfg.num_episodes() * prepare(cfg)[1].horizon
    flops = round_flops(cfg) / steps if args.flops else None
    seconds = time_rounds(cfg, args.workers, args.rounds)
    print(json.dumps({"env_steps_per_s": steps / seconds, "flops_per_step": flops}))


if __name__ == "__main__":
    main()
