"""Evaluate a checkpoint: run exactly N episodes (one per env instance) from a fixed seed."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from thrust_cli.run.checkpoint import load_policy
from thrust_cli.run.config import ConfigError, validate
from thrust_cli.vector.envs import agents_per_env, make_env


def evaluate(
    path: str | os.PathLike[str],
    episodes: int = 100,
    seed: int = 12345,
    deterministic: bool = True,
    overrides: Sequence[str] = (),
    max_steps: int = 1_000_000,
    gif: str | os.PathLike[str] | None = None,
    gif_frames: int = 300,
) -> dict[str, Any]:
    """Run ``episodes`` episodes of the checkpoint's policy and report their returns.

    Args:
        path: run directory (latest checkpoint) or checkpoint file.
        episodes: number of episodes; each runs in its own env instance, all stepped together.
        seed: seed of the evaluation envs.
        deterministic: the distribution's mode (argmax, or the Gaussian mean) instead of sampling.
        overrides: dotlist overrides of the run's config, e.g. ``env.max_steps=1000``.
        max_steps: give up (ValueError) if episodes have not finished after this many steps.
        gif: write an animation of env 0 (``env.render()``) to this path, at most ``gif_frames`` frames.

    Returns:
        ``{"mean_return", "std_return", "episodes", "mean_length", "checkpoint", "global_step"}``.
    """
    policy, cfg, state = load_policy(path)
    if overrides:
        try:
            merged: Any = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
            cfg = validate(merged)
        except ConfigError:
            raise
        except Exception as exc:
            raise ValueError(f"invalid override in {list(overrides)}: {str(exc).splitlines()[0]}") from None
    # one episode per agent: enough env instances for `episodes` agents (Snake: boards of many snakes)
    env = make_env(cfg.env, num_envs=-(-episodes // agents_per_env(cfg.env)), seed=seed)
    torch.manual_seed(seed)
    returns = np.zeros(env.num_agents)
    lengths = np.zeros(env.num_agents, dtype=np.int64)
    finished = np.zeros(env.num_agents, dtype=bool)
    env.reset(seed)
    frames: list[np.ndarray] = []
    if gif is not None:
        try:
            frames.append(np.asarray(env.render()))
        except NotImplementedError:
            env.close()
            raise ValueError(
                f"env '{cfg.env.name}' does not render; --gif works for: cartpole, snake, pendulum"
            ) from None
    recurrent = bool(getattr(policy, "recurrent", False))
    hidden: Any = policy.initial_state(env.num_agents) if recurrent else None  # type: ignore[operator]
    try:
        with torch.no_grad():
            for _ in range(max_steps):
                obs = torch.from_numpy(env.observations)
                if hidden is not None:
                    logits, _, hidden = policy(obs, hidden)
                else:
                    logits, _ = policy(obs)
                dist: Any = policy.dist
                actions = dist.mode(logits) if deterministic else dist.sample(logits)[0]
                env.step(dist.to_env(actions).numpy().astype(env.actions.dtype))
                if gif is not None and len(frames) < gif_frames:
                    frames.append(np.asarray(env.render()))
                running = ~finished
                returns[running] += env.rewards[running]
                lengths[running] += 1
                done = env.terminals | env.truncations
                finished |= done
                if hidden is not None and done.any():
                    ended = torch.from_numpy(np.flatnonzero(done))
                    hidden[0][:, ended] = 0.0
                    hidden[1][:, ended] = 0.0
                if finished[:episodes].all():
                    break
            else:
                raise ValueError(f"episodes did not finish within {max_steps} steps")
    finally:
        env.close()
    if gif is not None:
        _write_gif(Path(gif), frames)
    returns, lengths = returns[:episodes], lengths[:episodes]
    return {
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "episodes": episodes,
        "mean_length": float(lengths.mean()),
        "checkpoint": state["path"],
        "global_step": int(state["global_step"]),
    }


def _write_gif(path: Path, frames: list[np.ndarray], fps: int = 30) -> None:
    """Save RGB frames [H, W, 3] uint8 as an animated GIF (Pillow)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
