#!/usr/bin/env bash
# Second device call: the whole peer benchmark on the GPU again (JaxMARL's baseline now has its
# imports), then where an eager navigation AS round's time goes with the learners on the GPU.
export PYTHONUNBUFFERED=1
{ date -u; nvidia-smi -L; } 2>&1 | tee "$OUT/facts.log"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl 2>&1 | tail -5
export PYTHONPATH=/tmp/site:$PWD
timeout 45 python3 -c "import sys; sys.path.insert(0, '.peer/jaxmarl/baselines/IPPO'); import ippo_ff_mpe; print('imports ok')" 2>&1 | tail -4
cd benchmarks
t0=$(date +%s)
timeout 290 python3 peer_speed.py --bench-python python3 --jaxmarl-repo ../.peer/jaxmarl --device cuda --rounds 2 --updates 5 --compile-steps 2>&1 | grep --line-buffered -v -i -E "warn|softmax|split the|important use|^$" | tee "$OUT/peer_gpu.log"
echo "peer: $(( $(date +%s) - t0 )) s"
timeout 50 python3 train_speed.py --envs navigation --methods as,ippo --workers 1 --device cuda --profile 2>&1 | tee "$OUT/profile_gpu.log"
