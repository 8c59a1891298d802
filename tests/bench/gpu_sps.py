"""Training SPS on one GPU with each GPU option on and off (issue 15 item 6): CartPole at 4,096 envs (MLP) and
Snake with the LSTM, each as eager float32, train.amp=bf16, train.compile=true and both.

    python tests/bench/gpu_sps.py [--steps 2000000] [--device cuda] [--workloads snake-lstm] [--options float32,bf16]

Each row is one ``thrust bench --train-steps N`` (a training run of N steps, updates included); with compile,
the seconds of the compiling calls and the SPS without them are printed too. Runs on the CPU with ``--device
cpu`` (small ``--steps``) to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

WORKLOADS = {
    "cartpole-4096": ["env=cartpole", "env.num_envs=4096", "algo.num_steps=16", "algo.minibatch_size=16384",
                      "algo.update_epochs=2"],
    "snake-lstm": ["env=snake", "policy=lstm", "env.num_envs=16", "algo.num_steps=32", "algo.minibatch_size=16384",
                   "algo.update_epochs=1"],
}  # fmt: skip
OPTIONS = {
    "float32": [],
    "bf16": ["train.amp=bf16"],
    "compile": ["train.compile=true"],
    "bf16+compile": ["train.amp=bf16", "train.compile=true"],
}


def main() -> None:
    """Print one line per workload and option: SPS, and with compile its cost and the SPS after it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2_000_000)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma list of {', '.join(WORKLOADS)}")
    parser.add_argument("--options", default=",".join(OPTIONS), help=f"comma list of {', '.join(OPTIONS)}")
    args = parser.parse_args()
    workloads, options = args.workloads.split(","), args.options.split(",")
    for given, known in ((workloads, WORKLOADS), (options, OPTIONS)):
        if unknown := [x for x in given if x not in known]:
            parser.error(f"unknown {', '.join(unknown)}: choose from {', '.join(known)}")
    print(f"{'workload':<14} {'options':<13} {'SPS':>11} {'compile s':>10} {'SPS after compile':>18}")
    failed = False
    for workload in workloads:
        overrides = WORKLOADS[workload]
        for option in options:
            extra = OPTIONS[option]
            cmd = [sys.executable, "-m", "thrust_cli.cli", "bench", *overrides, *extra, f"device={args.device}",
                   "train.torch_threads=0", "--json", "--seconds", "0.2", "--train-steps", str(args.steps),
                   "--no-reference", "--vec-envs", "0"]  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                failed = True
                print(f"{workload:<14} {option:<13} failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
                continue
            d = json.loads(out.stdout)
            compile_s = f"{d['compile_s']:10.1f}" if "compile_s" in d else f"{'-':>10}"
            after = f"{d['train_sps_after_compile']:18,.0f}" if "compile_s" in d else f"{'-':>18}"
            print(f"{workload:<14} {option:<13} {d['train_sps']:11,.0f} {compile_s} {after}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
