"""Whole-process time to solve CartPole: Thrust vs Stable-Baselines3 (rl-zoo settings), side by side.

    python tests/bench/time_to_solve.py --seeds 1 2 3

Each run is a fresh process, timed from spawn to exit, runs alternating between the two so both see the same
machine load. Prints a table and the ratio of medians (Thrust / SB3); ``--json`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent


def timed(cmd: list[str], cwd: str) -> tuple[float, str]:
    begin = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True)
    return time.perf_counter() - begin, out.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("overrides", nargs="*", help="extra Thrust overrides")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            thrust_cmd = [
                "thrust",
                "train",
                "env=cartpole",
                "train.target_return=475",
                "train.target_window=20",
                f"seed={seed}",
                "train.progress=none",
                *args.overrides,
            ]
            t_thrust, out = timed(thrust_cmd, tmp)
            summary = json.loads((Path(out.strip().splitlines()[-1]) / "summary.json").read_text())
            t_sb3, out = timed([sys.executable, str(HERE / "sb3_cartpole.py"), "--seed", str(seed)], tmp)
            sb3 = json.loads(out.strip().splitlines()[-1])
            rows.append(
                {
                    "seed": seed,
                    "thrust_s": t_thrust,
                    "thrust_steps": summary["solved_at_step"],
                    "sb3_s": t_sb3,
                    "sb3_steps": sb3["solved_at_step"],
                }
            )
    result = {
        "rows": rows,
        "thrust_median_s": statistics.median(r["thrust_s"] for r in rows),
        "sb3_median_s": statistics.median(r["sb3_s"] for r in rows),
    }
    result["ratio"] = result["thrust_median_s"] / result["sb3_median_s"]
    if args.json:
        print(json.dumps(result))
        return
    for r in rows:
        print(
            f"seed {r['seed']}: thrust {r['thrust_s']:.2f}s ({r['thrust_steps']} steps)  "
            f"sb3 {r['sb3_s']:.2f}s ({r['sb3_steps']} steps)"
        )
    print(
        f"median: thrust {result['thrust_median_s']:.2f}s  sb3 {result['sb3_median_s']:.2f}s  "
        f"ratio {result['ratio']:.3f}"
    )


if __name__ == "__main__":
    main()
