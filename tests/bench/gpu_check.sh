#!/usr/bin/env bash
# GPU checks in one run (the lent device machine): the card, every gpu-marked test, then the figures: advantage
# kernels (Triton vs torch loop on CUDA vs C on the CPU), training SPS of ppo vs vtrace on CUDA, and training SPS
# with train.amp / train.compile on and off (tests/bench/gpu_sps.py).
#
#   bash tests/bench/gpu_check.sh
#
# Exit status: 0 every check passed; 1 one failed (the rest still run); 2 no CUDA GPU here, nothing checked (safe
# to run anywhere: "not checked" is neither a pass nor a failure). Needs torch with CUDA (it ships triton);
# wheels for hydra/omegaconf/gymnasium in .whl/ if the machine lacks them.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ]; then
  pip install -q --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
if ! python3 -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  echo "gpu_check.sh: no CUDA GPU (or no torch) on this machine: nothing checked"
  exit 2
fi
status=0
python3 setup.py build_ext --inplace -q 2>&1 | tail -2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, triton; print('card', torch.cuda.get_device_name(), '| torch', torch.__version__,
  '| cuda', torch.version.cuda, '| triton', triton.__version__)" || status=1

# every gpu-marked test: the files that use the marker (so a module that needs a package this machine lacks, and
# has no gpu test, cannot fail collection); -m gpu replaces addopts' "not slow and not bench"
mapfile -t gpu_files < <(grep -rl --include='test_*.py' 'mark\.gpu' tests | sort)
python3 -m pytest "${gpu_files[@]}" -m gpu -q -p no:cacheprovider 2>&1 | tail -15 || status=1

# figures
python3 tests/bench/advantage_gpu.py || status=1
for algo in ppo vtrace; do
  python3 -m thrust_cli.cli bench env=cartpole env.num_envs=4096 algo.num_steps=16 algo.minibatch_size=16384 \
    algo.update_epochs=2 train.torch_threads=0 device=cuda algo=$algo --json --seconds 0.5 --train-steps 2000000 \
    --no-reference --vec-envs 0 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print('$algo', 'cuda train SPS', round(d['train_sps']), 'advantage ms', {k: round(v, 2) for k, v in d['advantage_ms'].items()})" \
    || status=1
done
# training SPS with each GPU option on and off: CartPole 4,096 envs and Snake LSTM x {float32, bf16, compile, both}
python3 tests/bench/gpu_sps.py --steps 2000000 || status=1
echo "gpu_check.sh: $([ $status -eq 0 ] && echo 'all checks passed' || echo 'a check FAILED (see above)')"
exit $status
