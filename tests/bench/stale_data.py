"""V-trace vs PPO (GAE) on stale data: many epochs over a rollout, or the async vectorizer's one-update lag.

    python tests/bench/stale_data.py --seeds 1 2 3            # CartPole and Snake, prints a table
    python tests/bench/stale_data.py --only cartpole --json

Every run is a real ``thrust train`` process. CartPole: mean episode return over the whole run (the area under
the learning curve, higher = learns sooner) and the 100-episode eval of the final policy. Snake: food eaten per
episode over the last 10% of the run. Results in docs/performance.md#v-trace-and-stale-data.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SETTINGS = {
    "cartpole": {
        "base": ["env=cartpole"],
        "stale": {
            "epochs=16": ["algo.update_epochs=16"],
            "async": ["vec=multiprocessing", "vec.num_workers=2", "vec.batch_size=16"],
        },
    },
    "snake": {
        "base": ["env=snake", "train.total_timesteps=2000000"],
        "stale": {
            "epochs=8": ["algo.update_epochs=8"],
            "async": ["vec=multiprocessing", "vec.num_workers=2", "vec.batch_size=1"],
        },
    },
}


def metrics(run_dir: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def run(env: str, algo: str, stale: list[str], seed: int, tmp: Path) -> dict[str, float]:
    run_dir = tmp / f"{env}-{algo}-{'-'.join(stale)}-{seed}".replace("=", "_")
    cmd = ["thrust", "train", *SETTINGS[env]["base"], f"algo={algo}", *stale, f"seed={seed}",  # type: ignore[misc]
           "logger=none", "train.progress=none", f"hydra.run.dir={run_dir}"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    rows = metrics(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    if env == "cartpole":
        returns = [r["episode_return"] for r in rows if r.get("episode_return") is not None]
        out = subprocess.run(["thrust", "eval", str(run_dir), "--json", "-n", "100"], check=True, capture_output=True)
        return {"curve_mean": statistics.mean(returns), "eval": json.loads(out.stdout)["mean_return"],
                "sps": summary["sps"]}  # fmt: skip
    tail = rows[-max(1, len(rows) // 10) :]
    return {"food": statistics.mean(r["env/food_eaten"] for r in tail), "sps": summary["sps"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--only", choices=sorted(SETTINGS))
    parser.add_argument("--stale", nargs="+", help="only these staleness settings, e.g. async")
    parser.add_argument("--parallel", type=int, default=1, help="runs at once (each uses one torch thread)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for env, setting in SETTINGS.items():
            if args.only and env != args.only:
                continue
            jobs = [
                (name, stale, seed, algo)
                for name, stale in setting["stale"].items()  # type: ignore[attr-defined]
                if not args.stale or name in args.stale
                for seed in args.seeds
                for algo in ("ppo", "vtrace")
            ]
            with ThreadPoolExecutor(args.parallel) as pool:
                futures = [(job, pool.submit(run, env, job[3], job[1], job[2], Path(tmp))) for job in jobs]
                for (name, _, seed, algo), future in futures:
                    results.append({"env": env, "stale": name, "algo": algo, "seed": seed, **future.result()})
                    if not args.json:
                        print(json.dumps(results[-1]), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("\nmedians over seeds")
    keys = sorted({(r["env"], r["stale"], r["algo"]) for r in results})
    for env, stale, algo in keys:
        rows = [r for r in results if (r["env"], r["stale"], r["algo"]) == (env, stale, algo)]
        stats = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k not in ("env", "stale", "algo", "seed")}
        print(f"{env:9s} {stale:9s} {algo:7s} " + "  ".join(f"{k} {v:,.2f}" for k, v in stats.items()))


if __name__ == "__main__":
    main()
