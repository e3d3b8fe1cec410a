"""`flower-supernode` without its fixed waits: the same process, flags and behaviour, but an
adaptive poll of the SuperLink and fast object pulls (`asfed.engine.flower.polling` says which
waits, where in flwr 1.42, and what replaces them). Stock `flower-supernode` runs the same
apps; it puts a floor of about 3 s under every round trip.

    python -m asfed.engine.flower.supernode --superlink HOST:9092 --root-certificates ca.crt \\
        --auth-supernode-private-key node.key --isolation process --port 9094 ...
"""

from __future__ import annotations

import sys


def main() -> None:
    from flwr.supernode.cli import flower_supernode

    from asfed.engine.flower import rpclog
    from asfed.engine.flower.polling import patch_supernode_loop

    patch_supernode_loop()
    rpclog.install("supernode")  # only where ASFED_RPC_LOG is set
    sys.argv[0] = "flower-supernode"
    flower_supernode()


if __name__ == "__main__":
    main()
