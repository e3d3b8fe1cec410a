#!/usr/bin/env bash
# The peer benchmark's own environment: JAX and JaxMARL, never asfed's (jaxmarl 0.0.7 pins
# scipy<=1.12, brax and mujoco, which asfed's numpy 2 / scipy 1.17 environment cannot take).
# Usage: bash benchmarks/peer/setup.sh [VENV] (default .venv-bench); then
#   python benchmarks/peer_speed.py --bench-python .venv-bench/bin/python --jaxmarl-repo PATH
set -euo pipefail
venv="${1:-.venv-bench}"
here="$(cd "$(dirname "$0")" && pwd)"
python -m venv "$venv"
"$venv/bin/pip" install -q -r "$here/requirements.txt"
# jaxmarl's own pins (scipy<=1.12 above all) are not needed by its MPE envs or its IPPO baseline
"$venv/bin/pip" install -q --no-deps jaxmarl==0.0.7
"$venv/bin/python" -c "import jax, jaxmarl; print('jax', jax.__version__, 'jaxmarl', jaxmarl.__version__)"
