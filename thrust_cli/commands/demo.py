"""``thrust demo build``: train, evaluate and export the demo site's three policies (docs/demo.md).

Each demo is an ordinary ``thrust train`` run (a subprocess of this Python, so its progress, Ctrl-C handling and
run directory are those of the command) followed by ``thrust eval``'s evaluation, the same evaluation of a
uniformly random policy for comparison, and ``thrust export --safetensors --onnx`` into the model store
(``thrust_cli/web/models/<game>/`` by default, what ``thrust serve`` shows a fresh clone). ``model.json`` beside
the weights records the figures and the exact command, so a shipped policy says how it was made.

The nets are small on purpose: the page downloads the weights (target: wasm + weights < 200 KB per game).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thrust_cli.commands.evaluate import evaluate
from thrust_cli.run.checkpoint import load_policy
from thrust_cli.vector.envs import agents_per_env, make_env
from thrust_cli.vector.spaces import random_actions

MODELS_DIR = Path(__file__).resolve().parents[1] / "web" / "models"


@dataclass(frozen=True)
class Demo:
    """One demo policy: the game, a title for the page and the ``thrust train`` overrides that make it."""

    game: str
    title: str
    overrides: tuple[str, ...]
    episodes: int = 100


DEMOS: dict[str, Demo] = {
    "cartpole": Demo("cartpole", "CartPole: MLP 2x64, PPO", ("env=cartpole", "seed=1")),
    "snake": Demo(
        "snake",
        "Snake: MLP 2x64, PPO, 256 snakes per board",
        ("env=snake", "seed=1", "train.total_timesteps=10000000"),
        episodes=256,
    ),
    "asteroids": Demo(
        "asteroids",
        "Asteroids: MLP 2x64, PPO",
        (
            "env=asteroids",
            "seed=1",
            "policy.hidden_size=64",
            "train.torch_threads=1",
            "train.total_timesteps=30000000",
        ),
    ),
}


def random_policy_returns(env_cfg: Any, episodes: int, seed: int, max_steps: int = 1_000_000) -> dict[str, float]:
    """Mean return and length of ``episodes`` episodes (the first one of each agent) of uniform random actions."""
    env = make_env(env_cfg, num_envs=-(-episodes // agents_per_env(env_cfg)), seed=seed)
    rng = np.random.default_rng(seed)
    returns = np.zeros(env.num_agents)
    lengths = np.zeros(env.num_agents, dtype=np.int64)
    finished = np.zeros(env.num_agents, dtype=bool)
    try:
        env.reset(seed)
        for _ in range(max_steps):
            (actions,) = random_actions(env.single_action_space, env.num_agents, 1, rng)
            env.step(actions.astype(env.actions.dtype))
            running = ~finished
            returns[running] += env.rewards[running]
            lengths[running] += 1
            finished |= env.terminals | env.truncations
            if finished[:episodes].all():
                break
        else:
            raise ValueError(f"random episodes did not finish within {max_steps} steps")
    finally:
        env.close()
    return {
        "mean_return": float(returns[:episodes].mean()),
        "std_return": float(returns[:episodes].std()),
        "mean_length": float(lengths[:episodes].mean()),
        "episodes": episodes,
    }


def build_demo(
    demo: Demo, models_dir: Path = MODELS_DIR, work_dir: Path = Path("outputs/demo"), extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Train, evaluate and export one demo into ``models_dir/<game>/``; return its ``model.json`` content.

    ``extra`` overrides go after the demo's own (so they win), e.g. ``("seed=2",)``.

    Raises:
        RuntimeError: the training run failed (its one-line error is in the message).
    """
    from thrust_cli.commands.export import export_onnx
    from thrust_cli.commands.safetensors_format import export_safetensors

    run_dir = (work_dir / demo.game).resolve()
    overrides = (*demo.overrides, *extra)
    command = ["thrust", "train", *overrides]
    start = time.perf_counter()
    trained = subprocess.run(
        [sys.executable, "-m", "thrust_cli", "train", *overrides, f"hydra.run.dir={run_dir}"],
        check=False,
    )
    train_s = time.perf_counter() - start
    if trained.returncode != 0:
        raise RuntimeError(f"training the {demo.game} demo failed (exit {trained.returncode}); run: {run_dir}")
    result = evaluate(run_dir, episodes=demo.episodes)
    _, cfg, state = load_policy(run_dir)
    baseline = random_policy_returns(cfg.env, demo.episodes, seed=12345)
    target = models_dir / demo.game
    target.mkdir(parents=True, exist_ok=True)
    export_safetensors(run_dir, target / "policy.safetensors")
    export_onnx(run_dir, target / "policy.onnx")
    model = {
        "id": f"demo-{demo.game}",
        "game": demo.game,
        "architecture": str(cfg.policy.name),
        "title": demo.title,
        "eval": {k: result[k] for k in ("mean_return", "std_return", "mean_length", "episodes")}
        | {"seed": 12345, "greedy": True},
        "random": baseline | {"seed": 12345},
        "trained": {
            "global_step": int(state["global_step"]),
            "wall_time_s": round(train_s, 1),
            "machine": f"{os.cpu_count()} CPU cores",
            "date": time.strftime("%Y-%m-%d"),
        },
        "command": shlex.join(command),
        "rebuild": f"thrust demo build --game {demo.game}",
    }
    (target / "model.json").write_text(json.dumps(model, indent=2) + "\n")
    return model


def build_demos(
    games: list[str], models_dir: Path = MODELS_DIR, work_dir: Path = Path("outputs/demo"), extra: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """:func:`build_demo` for each game, in order."""
    unknown = [g for g in games if g not in DEMOS]
    if unknown:
        raise ValueError(f"unknown demo game '{unknown[0]}'; allowed: {', '.join(DEMOS)}, all")
    return [build_demo(DEMOS[g], models_dir, work_dir, extra) for g in games]


def describe(model: dict[str, Any]) -> str:
    """One line per built demo: the game, its greedy return against random's, and the training time."""
    ev, rnd = model["eval"]["mean_return"], model["random"]["mean_return"]
    ratio = f" ({ev / rnd:.1f}x)" if rnd > 0 and math.isfinite(ev / rnd) else ""
    return (
        f"{model['game']}: mean return {ev:.2f} vs random {rnd:.2f}{ratio} over {model['eval']['episodes']} "
        f"episodes; trained {model['trained']['global_step']:,} steps in {model['trained']['wall_time_s']:.0f} s"
    )
