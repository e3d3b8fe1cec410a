#!/usr/bin/env bash
# One device call (issue 26, item 5): facts, the carried wheels, the peer benchmark with the
# learners on the GPU, then cleanup rounds on the GPU. Every log goes to $OUT.
export PYTHONUNBUFFERED=1
{
  date -u; nvidia-smi -L; nproc
  python3 -c "import torch, jax; print('torch', torch.__version__, torch.cuda.is_available(), 'jax', jax.__version__, jax.devices())"
} 2>&1 | tee "$OUT/facts.log"
t0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl 2>&1 | tail -5
export PYTHONPATH=/tmp/site:$PWD
echo "install: $(( $(date +%s) - t0 )) s"
timeout 90 python3 -c "import sys; sys.path.insert(0, '.peer/jaxmarl/baselines/IPPO'); import jaxmarl, ippo_ff_mpe, asfed, pettingzoo; print('imports ok')" 2>&1 | tail -8
cd benchmarks
t0=$(date +%s)
timeout 330 python3 peer_speed.py --bench-python python3 --jaxmarl-repo ../.peer/jaxmarl --device cuda --rounds 2 --updates 5 --compile-steps 2>&1 | tee "$OUT/peer_gpu.log"
echo "peer: $(( $(date +%s) - t0 )) s"
timeout 150 python3 train_speed.py --envs cleanup --methods as,ippo --workers 1 --device cuda 2>&1 | tee "$OUT/cleanup_gpu.log"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw --format=csv 2>&1 | tee -a "$OUT/facts.log"
