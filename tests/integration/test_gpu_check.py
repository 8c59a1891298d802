"""tests/bench/gpu_check.sh, the one script a session with a lent GPU runs, works before it meets a GPU.

A device session has minutes of device time and one try to spare, so the script's own mistakes (a bad flag, a
JSON key that moved, a missing import) must show up here: ``--dry-run`` runs every step on the CPU at tiny sizes,
Triton through its interpreter.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch
from triton_compat import HAS_TRITON, OLD_INTERPRETER

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "bench" / "gpu_check.sh"


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


@pytest.mark.skipif(not HAS_TRITON, reason="the dry run interprets the Triton kernels")
@pytest.mark.skipif(OLD_INTERPRETER, reason="triton < 3.7 cannot interpret on numpy >= 2.4")
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the real run is the check")
def test_dry_run_runs_every_step_on_the_cpu() -> None:
    run = _run("--dry-run")
    out = run.stdout
    assert run.returncode == 0, out[-4000:] + run.stderr[-2000:]
    assert "all checks passed" in out
    sections = ["build", "gpu tests", "advantage kernels", "training SPS by option", "ppo vs vtrace"]
    positions = [out.index(f"== {name} (at ") for name in sections]
    assert positions == sorted(positions)
    # the gpu tests were collected (and skipped without CUDA), not missing
    gpu_tests = out[positions[1] : positions[2]]
    assert " skipped" in gpu_tests and " deselected" in gpu_tests
    # the advantage table: both estimators, Triton equal to the C kernel
    for estimator in ("gae", "vtrace"):
        row = next(line for line in out.splitlines() if line.startswith(estimator + " "))
        assert float(row.rsplit("|triton - C| ", 1)[1].rstrip(")")) < 1e-5
    # bench JSON parsed for both algorithms, and one SPS row per workload
    assert "ppo cpu train SPS" in out and "vtrace cpu train SPS" in out
    for workload in ("cartpole-4096", "snake-lstm"):
        row = next(line for line in out.splitlines() if line.startswith(workload))
        assert float(row.split()[2].replace(",", "")) > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the script runs its checks")
def test_without_a_gpu_nothing_is_checked_and_the_exit_is_2() -> None:
    run = _run(timeout=120)
    assert run.returncode == 2
    assert "nothing checked" in run.stdout and "--dry-run" in run.stdout


def test_an_unknown_option_is_refused_in_one_line() -> None:
    run = _run("--quick", timeout=60)
    assert run.returncode == 2
    assert (
        run.stdout.strip()
        == "gpu_check.sh: unknown option --quick (allowed: --dry-run, --parts tests,advantage,sps,ppo)"
    )
    run = _run("--parts", "tests,figures", timeout=60)
    assert run.returncode == 2
    assert run.stdout.strip() == "gpu_check.sh: unknown part 'figures' (allowed: tests, advantage, sps, ppo)"


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the real run is the check")
def test_parts_runs_only_the_named_sections() -> None:
    run = _run("--dry-run", "--parts", "ppo", timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "== ppo vs vtrace" in run.stdout and "ppo cpu train SPS" in run.stdout
    for skipped in ("== gpu tests", "== advantage kernels", "== training SPS by option"):
        assert skipped not in run.stdout
