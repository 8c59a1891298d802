"""The measured effect of each tuning knob of docs/tuning.md on training SPS, on this machine.

    python tests/bench/tuning.py                         # every group, 3 interleaved rounds (15-25 min on 2 cores)
    python tests/bench/tuning.py --groups threads vec_busy --repeats 5
    python tests/bench/tuning.py --scale 0.5 --json-out tuning.json
    python tests/bench/tuning.py --from-json tuning.json      # the table of a saved run again

Every run is a real ``thrust train`` process (``logger=none train.progress=none``, no interval checkpoints) whose
SPS is read from its ``summary.json``: env steps over the seconds of the training loop, updates included,
start-up (imports, Hydra, worker start) excluded. Within a group the variants run interleaved (A B C A B C ...)
so that a change in the machine's load hits every variant alike; each figure is the median over the rounds, and
"× first" is the variant's median over the group's first variant (the baseline); "× first, paired" the median
over the rounds of the ratio to the first variant of the same round, which a load that changes between rounds
disturbs less. The load average is read before and after each group, since on a shared 2-core machine absolute
figures move with it and ratios much less. Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# common to every run: no metric backend, no progress output, no checkpoint before the final one
COMMON = ["logger=none", "train.progress=none", "train.checkpoint_interval=1000000000", "train.best_metric=null"]
# CartPole with a learner batch large enough for SPS to mean something (the shipped preset is tuned for the
# time to solve: 32 envs x 32 steps)
LARGE = ["env=cartpole", "env.num_envs=1024", "algo.num_steps=16", "algo.update_epochs=2"]
MP = ["vec=multiprocessing"]  # num_workers auto: one per core that divides num_envs (2 here)


@dataclass
class Group:
    """One question of docs/tuning.md: variants of one knob over a shared base config."""

    name: str
    question: str
    base: list[str]
    variants: list[tuple[str, list[str], int]]  # (label, overrides, total_timesteps ~ 10-15 s of training)
    results: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    load: list[str] = field(default_factory=list)  # the 1-minute load average when the group began and ended


GROUPS = [
    Group(
        "num_envs",
        "env.num_envs (CartPole, 32 steps, minibatch 1024, 2 epochs: same learner work per sample)",
        ["env=cartpole", "algo.num_steps=32", "algo.minibatch_size=1024", "algo.update_epochs=2"],
        [
            ("env.num_envs=32", ["env.num_envs=32"], 350_000),
            ("env.num_envs=256", ["env.num_envs=256"], 700_000),
            ("env.num_envs=2048", ["env.num_envs=2048"], 800_000),
        ],
    ),
    Group(
        "minibatch",
        "algo.minibatch_size (CartPole 1024 envs x 16 steps = 16,384 per update, 2 epochs)",
        LARGE,
        [
            ("algo.minibatch_size=4096", ["algo.minibatch_size=4096"], 1_000_000),
            ("algo.minibatch_size=512", ["algo.minibatch_size=512"], 550_000),
            ("algo.minibatch_size=16384", ["algo.minibatch_size=16384"], 1_000_000),
        ],
    ),
    Group(
        "epochs",
        "algo.update_epochs (CartPole 1024 envs x 16 steps, minibatch 4096)",
        [*LARGE, "algo.minibatch_size=4096"],
        [
            ("algo.update_epochs=2", ["algo.update_epochs=2"], 1_000_000),
            ("algo.update_epochs=1", ["algo.update_epochs=1"], 1_500_000),
            ("algo.update_epochs=4", ["algo.update_epochs=4"], 550_000),
        ],
    ),
    Group(
        "threads",
        "train.torch_threads (CartPole 1024 envs x 16 steps, minibatch 4096; MLP 2x64, then 2x256)",
        [*LARGE, "algo.minibatch_size=4096"],
        [
            ("train.torch_threads=1", ["train.torch_threads=1"], 1_000_000),
            ("train.torch_threads=2", ["train.torch_threads=2"], 1_000_000),
            ("hidden 256, train.torch_threads=1", ["policy.hidden_size=256", "train.torch_threads=1"], 180_000),
            ("hidden 256, train.torch_threads=2", ["policy.hidden_size=256", "train.torch_threads=2"], 180_000),
        ],
    ),
    Group(
        "vec_cartpole",
        "vectorizer, cheap env (CartPole 1024 envs x 16 steps, minibatch 4096)",
        [*LARGE, "algo.minibatch_size=4096"],
        [
            ("vec=serial", ["vec=serial"], 1_000_000),
            ("vec=multiprocessing (sync, 2 workers)", ["vec=multiprocessing"], 1_000_000),
            ("vec=multiprocessing vec.batch_size=512 (async)", [*MP, "vec.batch_size=512"], 1_000_000),
        ],
    ),
    Group(
        "vec_busy",
        "vectorizer, heavy env (Busy work=8000; 512 envs x 32 steps, minibatch 4096, 2 epochs)",
        ["env=busy", "env.work=8000", "env.num_envs=512", "algo.num_steps=32", *LARGE[3:], "algo.minibatch_size=4096"],
        [
            ("vec=serial", ["vec=serial"], 300_000),
            ("vec=multiprocessing (sync, 2 workers)", ["vec=multiprocessing"], 300_000),
            ("vec=multiprocessing vec.batch_size=256 (async)", [*MP, "vec.batch_size=256"], 300_000),
        ],
    ),
    Group(
        "amp",
        "train.amp on the CPU (CartPole 1024 envs x 16 steps, minibatch 4096)",
        [*LARGE, "algo.minibatch_size=4096"],
        [
            ("train.amp=none", ["train.amp=none"], 1_000_000),
            ("train.amp=bf16", ["train.amp=bf16"], 900_000),
            ("train.amp=fp16", ["train.amp=fp16"], 900_000),
        ],
    ),
]


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, as ``uptime`` prints them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def run_once(overrides: list[str], run_dir: Path) -> dict[str, float]:
    """One ``thrust train`` process; its summary's SPS and the share of the loop spent in the learner."""
    cmd = [sys.executable, "-m", "thrust_cli", "train", *overrides, *COMMON, f"hydra.run.dir={run_dir}"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd[2:])} failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    loop = sum(summary.get(k, 0.0) for k in ("env_s", "inference_s", "copy_s", "learn_s"))
    return {"sps": float(summary["sps"]), "learn_share": summary.get("learn_s", 0.0) / loop if loop else 0.0}


def measure(groups: list[Group], repeats: int, scale: float, tmp: Path, echo: bool) -> None:
    """Run every group's variants ``repeats`` times, interleaved, filling ``group.results``."""
    for group in groups:
        group.load.append(f"{os.getloadavg()[0]:.2f}")
        for r in range(repeats):
            for k, (label, overrides, steps) in enumerate(group.variants):
                run_dir = tmp / group.name / f"{k}-{r}"
                begin = time.perf_counter()
                result = run_once([*group.base, *overrides, f"train.total_timesteps={int(steps * scale)}"], run_dir)
                group.results.setdefault(label, []).append(result)
                if echo:
                    print(
                        f"{group.name:12s} round {r + 1}  {label:48s} {result['sps']:>10,.0f} SPS  "
                        f"({time.perf_counter() - begin:.1f} s)",
                        file=sys.stderr,
                    )
        group.load.append(f"{os.getloadavg()[0]:.2f}")


def table(groups: list[Group]) -> str:
    """The Markdown table: one row per variant, medians over the rounds and the ratio to the group's first."""
    lines = [
        "| knob | setting | SPS (median) | range | learner share | × first | × first, paired |",
        "|---|---|---|---|---|---|---|",
    ]
    for group in groups:
        first = [run["sps"] for run in group.results[group.variants[0][0]]]
        for label, *_ in group.variants:
            runs = group.results[label]
            sps = [run["sps"] for run in runs]
            median = statistics.median(sps)
            share = statistics.median(run["learn_share"] for run in runs)
            # paired: the ratio to the first variant of the same round, whose load was closest, then the median
            paired = statistics.median(a / b for a, b in zip(sps, first, strict=True))
            lines.append(
                f"| {group.question if label == group.variants[0][0] else ''} | `{label}` | {median:,.0f} | "
                f"{min(sps):,.0f}–{max(sps):,.0f} | {share:.0%} | {median / statistics.median(first):.2f} | "
                f"{paired:.2f} |"
            )
    loads = ", ".join(f"{g.name} {g.load[0]} → {g.load[-1]}" for g in groups if g.load)
    return "\n".join(lines) + (f"\n\n1-minute load average when each group began → ended: {loads}" if loads else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = [g.name for g in GROUPS]
    parser.add_argument("--groups", nargs="+", choices=names, default=names, help="which knobs (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds per group (median over them)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every run's total_timesteps")
    parser.add_argument("--json-out", type=Path, help="also write every run's figures to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--from-json", type=Path, help="print the table of a --json-out file instead of measuring")
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        groups = [g for g in GROUPS if g.name in saved["groups"]]
        for g in groups:
            g.results, g.load = saved["groups"][g.name]["results"], saved["groups"][g.name].get("load", [])
        print(table(groups))
        before, after = saved["load_before"], saved["load_after"]
        print(f"\n{saved['repeats']} interleaved rounds; load average before: {before}, after: {after}")
        return
    if args.repeats < 1 or args.scale <= 0:
        raise SystemExit("error: --repeats must be >= 1 and --scale > 0")
    groups = [g for g in GROUPS if g.name in args.groups]
    before, began = load_average(), time.time()
    with tempfile.TemporaryDirectory() as tmp:
        measure(groups, args.repeats, args.scale, Path(tmp), not args.quiet)
    after = load_average()
    print(table(groups))
    print()
    print(
        f"{args.repeats} interleaved rounds, {time.time() - began:.0f} s in all, {os.cpu_count()} CPUs; "
        f"load average before: {before}, after: {after}"
    )
    if args.json_out:
        runs = {g.name: {"question": g.question, "load": g.load, "results": g.results} for g in groups}
        payload = {"load_before": before, "load_after": after, "repeats": args.repeats, "scale": args.scale}
        args.json_out.write_text(json.dumps(payload | {"groups": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
