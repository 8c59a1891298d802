#!/usr/bin/env bash
# Fetch, on a machine with PyPI, the wheels of Thrust's runtime dependencies that the lent GPU machine's image
# lacks (it has torch, triton, numpy, typer, rich, tensorboard, pillow, matplotlib, cython, pytest, but no
# gymnasium or hydra), into .whl/, which git ignores here; the device run carries it and gpu_check.sh installs it:
#
#   bash tests/bench/device_wheels.sh          # here, once (about 1 MB, pure-Python wheels)
#   run(command="bash tests/bench/gpu_check.sh", carry=[".whl"])   # the device tool
#
# The versions are those pip picks here for the pyproject ranges, pinned so the set installs with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .git/info && touch .git/info/exclude
grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >>.git/info/exclude
rm -rf .whl && mkdir .whl
# all pure Python (py3-none-any), so built here they install on the device's Python 3.12; antlr4 4.9.3 is an
# sdist only, which `pip wheel` turns into a wheel
python3 -m pip wheel -q --no-deps -w .whl "gymnasium==1.4.0" "farama-notifications==0.0.6" "hydra-core==1.3.8" \
  "omegaconf==2.3.1" "antlr4-python3-runtime==4.9.3"
ls .whl
