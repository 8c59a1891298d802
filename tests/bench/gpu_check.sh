#!/usr/bin/env bash
# GPU checks in one short run (the lent device machine): the gpu-marked tests, then training SPS of ppo vs
# vtrace on CUDA. Needs torch with CUDA; wheels for hydra/omegaconf/gymnasium in .whl/ if the machine lacks them.
set -euo pipefail
if [ -d .whl ]; then pip install -q --no-deps --target /tmp/site .whl/*.whl; export PYTHONPATH=/tmp/site:$PWD; fi
python3 setup.py build_ext --inplace -q 2>&1 | tail -2
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m pytest tests/integration/test_gpu.py tests/unit/test_advantage.py -q -p no:cacheprovider -m "gpu or not gpu" -k "cuda or gpu" 2>&1 | tail -4
for algo in ppo vtrace; do
  python3 -m thrust_cli.cli bench env=cartpole env.num_envs=4096 algo.num_steps=16 algo.minibatch_size=16384 \
    algo.update_epochs=2 train.torch_threads=0 device=cuda algo=$algo --json --seconds 0.5 --train-steps 2000000 \
    --no-reference --vec-envs 0 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print('$algo', 'cuda train SPS', round(d['train_sps']), 'advantage ms', {k: round(v, 2) for k, v in d['advantage_ms'].items()})"
done
