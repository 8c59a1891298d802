#!/usr/bin/env bash
# GPU checks in one run (the lent device machine): the card, every gpu-marked test, then the figures: advantage
# kernels (Triton vs torch loop on CUDA vs C on the CPU), training SPS of ppo vs vtrace on CUDA, and training SPS
# with train.amp / train.compile on and off (tests/bench/gpu_sps.py).
#
#   bash tests/bench/gpu_check.sh
#
# On the lent device machine (its image has torch+CUDA, triton, cython and pytest, not gymnasium or hydra): first,
# here, `bash tests/bench/device_wheels.sh` (puts their wheels in .whl/, ignored by git), then one device call:
#
#   run(command="PYTHONUNBUFFERED=1 bash tests/bench/gpu_check.sh 2>&1 | tee $OUT/gpu_check.log",
#       carry=[".whl"], timeout_s=600)
#
# (about 5-8 minutes on an H100/H200; the log under $OUT comes back even if the call is cut short).
#
#   bash tests/bench/gpu_check.sh --dry-run    # every step on the CPU at tiny sizes: checks this script, no figures
#   bash tests/bench/gpu_check.sh --parts sps,ppo   # some parts only (tests, advantage, sps, ppo), e.g. what a
#                                                   # call cut short at its limit did not reach
#
# Exit status: 0 every check passed; 1 one failed (the rest still run); 2 no CUDA GPU here, or a package missing,
# nothing checked (safe to run anywhere: "not checked" is neither a pass nor a failure).
set -uo pipefail
cd "$(dirname "$0")/../.."
dry=0 parts=",tests,advantage,sps,ppo,"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1 ;;
    --parts)
      parts=",${2:-},"
      for part in ${2//,/ }; do
        case "$part" in tests|advantage|sps|ppo) ;; *)
          echo "gpu_check.sh: unknown part '$part' (allowed: tests, advantage, sps, ppo)"; exit 2 ;;
        esac
      done
      shift ;;
    *) echo "gpu_check.sh: unknown option $1 (allowed: --dry-run, --parts tests,advantage,sps,ppo)"; exit 2 ;;
  esac
  shift
done
want() { [[ "$parts" == *",$1,"* ]]; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
if ! python3 -c "import gymnasium, hydra, omegaconf, typer, rich, Cython" 2>/dev/null; then
  echo "gpu_check.sh: a dependency is missing: $(python3 -c "import gymnasium, hydra, omegaconf, typer, rich, Cython" 2>&1 | tail -1)"
  echo "  (on a machine with PyPI run tests/bench/device_wheels.sh, and carry .whl to this one)"
  exit 2
fi
if [ $dry -eq 1 ]; then
  # the same steps on the CPU: Triton through its interpreter, a few thousand steps; checks the script only
  device=cpu envs=256 steps=2000 adv_args=(--device cpu --shapes 8x16 --repeats 2) sps_args=(--options bf16)
  echo "gpu_check.sh --dry-run: every step on the CPU at tiny sizes (checks this script; the figures mean nothing)"
else
  if ! python3 -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    echo "gpu_check.sh: no CUDA GPU (or no torch) on this machine: nothing checked (--dry-run checks the script)"
    exit 2
  fi
  device=cuda envs=4096 steps=2000000 adv_args=() sps_args=()
fi
status=0
start=$SECONDS
err=$(mktemp)
trap 'rm -f "$err"' EXIT
section() { echo "== $1 (at $((SECONDS - start)) s)"; }
section "build"
if [ $dry -eq 0 ] || ! python3 -c "import envs_cython.cartpole, envs_cython.snake, thrust_cli.kernels.advantage" 2>/dev/null; then
  python3 setup.py build_ext --inplace -q -j "$(nproc)" 2>&1 | tail -2
fi
[ $dry -eq 0 ] && { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true; }
python3 -c "import torch, triton; print('card', torch.cuda.get_device_name() if torch.cuda.is_available() else 'none',
  '| torch', torch.__version__, '| cuda', torch.version.cuda, '| triton', triton.__version__)" || status=1

if want tests; then
section "gpu tests"
# every gpu-marked test: the files that use the marker (so a module that needs a package this machine lacks, and
# has no gpu test, cannot fail collection); -m gpu replaces addopts' "not slow and not bench"
mapfile -t gpu_files < <(grep -rl --include='test_*.py' 'mark\.gpu' tests | sort)
# the whole log goes to $OUT (the device tool brings it back) when that is set, its summary here
python3 -m pytest "${gpu_files[@]}" -m gpu -q -rfEs -p no:cacheprovider 2>&1 | tee "${OUT:-/tmp}/gpu_tests.log" \
  | tail -25 || status=1

fi
if want advantage; then
section "advantage kernels"
if [ $dry -eq 1 ]; then
  TRITON_INTERPRET=1 python3 tests/bench/advantage_gpu.py "${adv_args[@]}" || status=1
else
  python3 tests/bench/advantage_gpu.py || status=1
fi
fi
if want sps; then
section "training SPS by option"
# training SPS with each GPU option on and off: CartPole 4,096 envs and Snake LSTM x {float32, bf16, compile, both}
python3 tests/bench/gpu_sps.py --device $device --steps $steps "${sps_args[@]}" || status=1
fi
# least needed last: a call cut short at its limit loses only this
if want ppo; then
section "ppo vs vtrace"
for algo in ppo vtrace; do
  if python3 -m thrust_cli.cli bench env=cartpole env.num_envs=$envs algo.num_steps=16 algo.minibatch_size=16384 \
    algo.update_epochs=2 train.torch_threads=0 device=$device algo=$algo --json --seconds 0.5 --train-steps $steps \
    --no-reference --vec-envs 0 2>"$err" >"$err.json"; then
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('$algo', '$device train SPS', round(d['train_sps']),
      'advantage ms (CPU)', {k: round(v, 2) for k, v in d['advantage_ms'].items()},
      'on the device', {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.get('advantage_ms_device', {}).items()})" \
      "$err.json" || status=1
  else
    echo "$algo: bench failed: $(tail -1 "$err")"; status=1
  fi
  rm -f "$err.json"
done
fi
echo "gpu_check.sh ($((SECONDS - start)) s): $([ $status -eq 0 ] && echo 'all checks passed' || echo 'a check FAILED (see above)')"
exit $status
