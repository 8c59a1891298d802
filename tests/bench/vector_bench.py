"""Vectorizer benchmark: Serial vs Multiprocessing (sync and async), steps/s, medians of interleaved runs.

    python tests/bench/vector_bench.py                  # every section, about 2 minutes on 2 cores
    python tests/bench/vector_bench.py --only gym,startup --runs 9

Sections (each measures its contenders in turn, ``--runs`` times, so load changes hit all alike; each run
lasts about ``--seconds``; the table gives the median, the min-max spread and the ratio to the first row):

- ``cartpole``: the C CartPole, 2 workers x 4096 envs; the main process only sends and receives.
- ``cartpole-policy``: the same, the main process busy ``--policy-us`` µs per 4096 observations between recv and
  send (single-threaded NumPy standing in for a policy forward pass); async overlaps it with stepping.
- ``busy`` / ``busy-policy``: the Busy env (``--work`` iterations per env and step: a few ms per 4096 envs).
- ``gym``: Gymnasium CartPole-v1 through GymnasiumEnv with 2 workers, against Gymnasium's AsyncVectorEnv with
  2 processes (its one env per process: 2 envs) and SyncVectorEnv. Thrust is shown both with the same 2 envs
  (the same work per step) and with 8 envs per worker (what a vectorizer with many envs per worker is for).
- ``startup``: construction + reset + close of 2 x 4096 CartPoles per start method, torch imported first.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import gymnasium
import numpy as np

from envs_cython.busy import Busy
from envs_cython.cartpole import CartPole
from envs_cython.gym_adapter import GymnasiumEnv
from thrust_cli.vector.multiprocessing import DEFAULT_PARENT_SPIN_US, DEFAULT_SPIN_US, Multiprocessing
from thrust_cli.vector.serial import Serial

SECTIONS = ("cartpole", "cartpole-policy", "busy", "busy-policy", "gym", "startup")


class FakePolicy:
    """About ``us_per_4096`` µs of single-threaded NumPy per 4096 observations (tanh over a scratch array)."""

    def __init__(self, us_per_4096: float, max_agents: int) -> None:
        probe = np.full(1 << 20, 0.5)
        begin = time.perf_counter()
        for _ in range(5):
            np.tanh(probe, out=probe)
        per_element_us = (time.perf_counter() - begin) * 1e6 / (5 * probe.size)
        self.per_agent = max(1, round(us_per_4096 / per_element_us / 4096))
        self.scratch = np.full(self.per_agent * max_agents, 0.5)

    def __call__(self, obs: np.ndarray) -> None:
        part = self.scratch[: len(obs) * self.per_agent]
        np.tanh(part, out=part)


class VecRunner:
    """Drives a Thrust vectorizer: recv, (policy), send random actions; counts agent-steps."""

    def __init__(self, vec: Any, policy: FakePolicy | None = None) -> None:
        self.vec = vec
        self.policy = policy
        vec.reset(0)
        rng = np.random.default_rng(0)
        self.actions = rng.integers(0, 2, (64, vec.num_agents)).astype(np.int32)

    def run(self, iterations: int) -> int:
        vec, policy, actions, done = self.vec, self.policy, self.actions, 0
        for i in range(iterations):
            obs, _, _, _, _, ids = vec.recv()
            if policy is not None:
                policy(obs)
            vec.send(actions[i & 63][: len(ids)])
            done += len(ids)
        return done

    def close(self) -> None:
        self.vec.close()


class GymRunner:
    """Drives a Gymnasium vector env with random actions; counts agent-steps."""

    def __init__(self, env: gymnasium.vector.VectorEnv) -> None:
        self.env = env
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        self.actions = rng.integers(0, 2, (64, env.num_envs))

    def run(self, iterations: int) -> int:
        for i in range(iterations):
            self.env.step(self.actions[i & 63])
        return iterations * self.env.num_envs

    def close(self) -> None:
        self.env.close()


def measure(title: str, contenders: dict[str, Callable[[], Any]], runs: int, seconds: float) -> dict[str, float]:
    """Print and return the median agent-steps/s of each contender over ``runs`` interleaved runs."""
    print(f"\n== {title} ==", flush=True)
    runners = {name: make() for name, make in contenders.items()}
    iterations, rates = {}, {name: [] for name in runners}  # type: ignore[var-annotated]
    try:
        for name, runner in runners.items():  # warm up, and size each run to about `seconds`
            n, elapsed = 1, 0.0
            while elapsed < 0.1:
                n *= 2
                begin = time.perf_counter()
                runner.run(n)
                elapsed = time.perf_counter() - begin
            iterations[name] = max(1, round(n * seconds / elapsed))
        for _ in range(runs):
            for name, runner in runners.items():
                begin = time.perf_counter()
                done = runner.run(iterations[name])
                rates[name].append(done / (time.perf_counter() - begin))
    finally:
        for runner in runners.values():
            runner.close()
    medians = {name: statistics.median(r) for name, r in rates.items()}
    base = next(iter(medians.values()))
    print(f"{'':52s} {'steps/s':>10s} {'min - max':>21s} {'ratio':>7s}")
    for name, r in rates.items():
        spread = f"{_si(min(r))} - {_si(max(r))}"
        print(f"{name:52s} {_si(medians[name]):>10s} {spread:>21s} {medians[name] / base:7.2f}")
    return medians


def _si(x: float) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k"


def mp(creator: Any, num_envs: int, args: argparse.Namespace, **kwargs: Any) -> Multiprocessing:
    return Multiprocessing(creator, num_envs, spin_us=args.spin_us, parent_spin_us=args.parent_spin_us, **kwargs)


def vector_contenders(creator: Any, n: int, policy_us: float | None, args: argparse.Namespace) -> dict[str, Any]:
    """Serial, sync and async over ``n`` envs; each runner gets its own fake policy when ``policy_us`` is set."""

    def fake() -> FakePolicy | None:
        return None if policy_us is None else FakePolicy(policy_us, n)

    return {
        "Serial, 1 object": lambda: VecRunner(Serial(creator, n), fake()),
        f"Multiprocessing sync, 2 workers x {n // 2}": lambda: VecRunner(mp(creator, n, args), fake()),
        f"Multiprocessing async, 2 workers, batch {n // 2}": lambda: VecRunner(
            mp(creator, n, args, batch_size=n // 2), fake()
        ),
    }


def vector_sections(args: argparse.Namespace, only: set[str]) -> None:
    n = 2 * 4096
    for section, label, creator, policy_us in (
        ("cartpole", "CartPole (C)", CartPole, None),
        ("cartpole-policy", "CartPole (C)", CartPole, args.policy_us),
        ("busy", f"Busy(work={args.work})", partial(Busy, work=args.work), None),
        ("busy-policy", f"Busy(work={args.work})", partial(Busy, work=args.work), args.busy_policy_us),
    ):
        if section in only:
            busy_main = "" if policy_us is None else f"; main busy {policy_us:g} us per 4096 obs"
            measure(f"{label}, {n} envs{busy_main}", vector_contenders(creator, n, policy_us, args), args.runs,
                    args.seconds)  # fmt: skip


def gym_section(args: argparse.Namespace) -> None:
    gym_creator = partial(GymnasiumEnv, "CartPole-v1")

    def make_gym(num: int) -> Any:
        return [partial(gymnasium.make, "CartPole-v1")] * num

    measure(
        "Gymnasium CartPole-v1, 2 processes",
        {
            "gymnasium AsyncVectorEnv, 2 processes (2 envs)": lambda: GymRunner(
                gymnasium.vector.AsyncVectorEnv(make_gym(2))
            ),
            "gymnasium SyncVectorEnv, 16 envs (1 process)": lambda: GymRunner(
                gymnasium.vector.SyncVectorEnv(make_gym(16))
            ),
            "Thrust Serial, GymnasiumEnv 16 envs (1 process)": lambda: VecRunner(Serial(gym_creator, 16)),
            "Thrust Multiprocessing sync, 2 workers x 1 env": lambda: VecRunner(mp(gym_creator, 2, args)),
            "Thrust Multiprocessing sync, 2 workers x 8 envs": lambda: VecRunner(mp(gym_creator, 16, args)),
            "Thrust Multiprocessing async, 2 workers x 8, batch 8": lambda: VecRunner(
                mp(gym_creator, 16, args, batch_size=8)
            ),
        },
        args.runs,
        args.seconds,
    )


STARTUP = """
import statistics, sys, time
import torch
from envs_cython.cartpole import CartPole
from thrust_cli.vector.multiprocessing import Multiprocessing
torch.ones(256, 256) @ torch.ones(256, 256)  # torch's thread pool is up, as in a trainer
times = []
for _ in range({runs}):
    begin = time.perf_counter()
    vec = Multiprocessing(CartPole, 8192, num_workers=2, start_method=sys.argv[1])
    vec.reset(0)
    ready = time.perf_counter()
    vec.close()
    times.append((ready - begin, time.perf_counter() - ready))
print(times[0][0], statistics.median(t[0] for t in times), statistics.median(t[1] for t in times))
"""


def startup_section(args: argparse.Namespace) -> None:
    """Each start method in a fresh interpreter that imported torch (the first forkserver start includes the
    server's own start)."""
    print("\n== start-up: Multiprocessing(CartPole, 8192, 2 workers) + reset, then close; torch imported ==")
    print(f"{'start method':16s} {'first (s)':>10s} {'median (s)':>11s} {'close (s)':>10s}")
    for method in ("fork", "forkserver", "spawn"):
        out = subprocess.run(
            [sys.executable, "-c", STARTUP.format(runs=max(3, args.runs // 2)), method],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        first, median, close = (float(x) for x in out)
        print(f"{method:16s} {first:10.3f} {median:11.3f} {close:10.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--runs", type=int, default=7, help="interleaved runs per contender (median reported)")
    parser.add_argument("--seconds", type=float, default=0.25, help="length of one run")
    parser.add_argument("--work", type=int, default=500, help="Busy: iterations per env and step")
    parser.add_argument("--policy-us", type=float, default=300.0, help="CartPole: main busy µs per 4096 obs")
    parser.add_argument("--busy-policy-us", type=float, default=2000.0, help="Busy: main busy µs per 4096 obs")
    parser.add_argument("--spin-us", type=float, default=DEFAULT_SPIN_US, help="workers' spin bound")
    parser.add_argument("--parent-spin-us", type=float, default=DEFAULT_PARENT_SPIN_US, help="parent's spin bound")
    args = parser.parse_args()
    only = set(args.only.split(","))
    unknown = only - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; allowed: {SECTIONS}")
    print(f"vector_bench: {args.runs} runs of ~{args.seconds}s per contender; spin_us={args.spin_us:g}, "
          f"parent_spin_us={args.parent_spin_us:g}")  # fmt: skip
    vector_sections(args, only)
    if "gym" in only:
        gym_section(args)
    if "startup" in only:
        startup_section(args)


if __name__ == "__main__":
    main()
