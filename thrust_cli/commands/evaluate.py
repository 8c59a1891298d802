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
from thrust_cli.run.config import GROUPS, SECTIONS, ConfigError, validate
from thrust_cli.vector.envs import agents_per_env, make_env

RENDERING_ENVS = ("cartpole", "snake", "pendulum", "asteroids", "gym (ids that render rgb_array frames)")


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
    cfg = apply_overrides(cfg, overrides)
    gif_path = _check_gif_path(Path(gif)) if gif is not None else None
    env_cfg = cfg.env
    if gif_path is not None and env_cfg.name == "gym":
        env_cfg = OmegaConf.merge(env_cfg, {"kwargs": {"render_mode": "rgb_array"}})
    # one episode per agent: enough env instances for `episodes` agents (Snake: boards of many snakes)
    env = make_env(env_cfg, num_envs=-(-episodes // agents_per_env(cfg.env)), seed=seed)
    try:
        _check_spaces(env, state["spaces"], cfg.env)
    except ValueError:
        env.close()
        raise
    torch.manual_seed(seed)
    returns = np.zeros(env.num_agents)
    lengths = np.zeros(env.num_agents, dtype=np.int64)
    finished = np.zeros(env.num_agents, dtype=bool)
    env.reset(seed)
    frames: list[np.ndarray] = []
    if gif_path is not None:
        try:
            frames.append(_frame(env, cfg.env))
        except ValueError:
            env.close()
            raise
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
                if gif_path is not None and len(frames) < gif_frames:
                    frames.append(_frame(env, cfg.env))
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
    if gif_path is not None:
        _write_gif(gif_path, frames)
    returns, lengths = returns[:episodes], lengths[:episodes]
    return {
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "episodes": episodes,
        "mean_length": float(lengths.mean()),
        "checkpoint": state["path"],
        "global_step": int(state["global_step"]),
    }


def apply_overrides(cfg: Any, overrides: Sequence[str]) -> Any:
    """The run's saved config with eval's ``key=value`` overrides on top, validated.

    An override either applies or is refused with the reason: a config group choice (``env=snake``) is a no-op
    when it names the run's own choice and refused otherwise (the policy was trained on that group's spaces);
    ``+key=value`` adds a key (which validation then accepts or names as unknown); options and ``~key`` are
    refused.

    Raises:
        ConfigError: an override that cannot apply, or a config that fails validation.
    """
    dotlist = []
    for override in overrides:
        if override.startswith("-"):
            raise ConfigError(f"unknown option '{override}'; see `thrust eval --help`")
        if override.startswith("~") or "=" not in override:
            raise ConfigError(
                f"cannot apply '{override}' in eval; allowed: key=value overrides such as env.max_steps=1000"
            )
        key, value = override.lstrip("+").split("=", 1)
        if key in GROUPS or key in SECTIONS:
            current = cfg[key].get("name") if key in GROUPS and key in cfg else None
            if key == "env" and value == current:
                continue  # the run's own env: nothing to change
            why = (
                f"the policy was trained on env={current} and needs its observation and action spaces"
                if key == "env"
                else "eval uses only the run's policy and its env"
            )
            raise ConfigError(
                f"cannot apply '{override}' in eval: {why}; allowed: key=value overrides such as env.max_steps=1000"
            )
        if not key.startswith("env."):  # lr, algo.*, train.*, device: nothing eval reads, so not silently taken
            raise ConfigError(
                f"cannot apply '{override}' in eval: eval uses only the run's policy and its env; "
                "allowed: env.* overrides such as env.max_steps=1000"
            )
        dotlist.append(f"{key}={value}")
    if not dotlist:
        return cfg
    try:
        merged: Any = OmegaConf.merge(cfg, OmegaConf.from_dotlist(dotlist))
    except Exception as exc:
        raise ConfigError(f"invalid override in {list(overrides)}: {str(exc).splitlines()[0]}") from None
    return validate(merged)


def _space_text(obs_shape: Any, obs_dtype: Any, action: dict[str, Any], num_actions: int) -> str:
    act = f"Discrete({num_actions})" if action["type"] == "Discrete" else f"Box({num_actions},)"
    return f"observations {tuple(obs_shape)} {obs_dtype} and actions {act}"


def _check_spaces(env: Any, spaces: dict[str, Any], env_cfg: Any) -> None:
    """Raise ValueError (one line) unless ``env``'s spaces are those the checkpoint's policy was trained on."""
    obs_space, act_space = env.single_observation_space, env.single_action_space
    discrete = hasattr(act_space, "n")
    have: dict[str, Any] = {
        "obs_shape": list(obs_space.shape),
        "obs_dtype": str(obs_space.dtype),
        "num_actions": int(act_space.n) if discrete else int(np.prod(act_space.shape)),
        "action": {"type": "Discrete" if discrete else "Box"},
    }
    want_action = spaces.get("action", {"type": "Discrete"})
    if (
        have["obs_shape"] == list(spaces["obs_shape"])
        and have["obs_dtype"] == spaces["obs_dtype"]
        and have["num_actions"] == spaces["num_actions"]
        and have["action"]["type"] == want_action["type"]
    ):
        return
    name = env_cfg.name if env_cfg.name != "gym" else f"gym env.id={env_cfg.id}"
    raise ValueError(
        f"env {name} has {_space_text(have['obs_shape'], have['obs_dtype'], have['action'], have['num_actions'])}"
        f", but this policy was trained on "
        f"{_space_text(spaces['obs_shape'], spaces['obs_dtype'], want_action, spaces['num_actions'])}; "
        "allowed: overrides that keep the spaces (e.g. env.max_steps)"
    )


#: the animated formats ``--gif`` writes (Pillow picks the format by the extension)
GIF_SUFFIXES = (".gif", ".webp", ".png")


def _check_gif_path(path: Path) -> Path:
    """Fail now (one line), not after the whole evaluation, when the GIF cannot be written at ``path``."""
    if path.is_dir():
        raise ValueError(f"cannot write '{path}': it is a directory; give a file name such as {path / 'eval.gif'}")
    if path.suffix.lower() not in GIF_SUFFIXES:
        raise ValueError(f"--gif '{path}' must end in {', '.join(GIF_SUFFIXES)} (an animation Pillow writes)")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ValueError(f"cannot write '{path}': '{blocker}' is a file, not a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot write '{path}': {exc.strerror or exc}") from None
    if not os.access(path.parent, os.W_OK):
        raise ValueError(f"cannot write '{path}': permission denied")
    return path


def _frame(env: Any, env_cfg: Any) -> np.ndarray:
    """One RGB frame [H, W, 3] uint8 of env 0; ValueError (one line) for envs that cannot draw one."""
    # Gymnasium's renderers draw off-screen with pygame: no banner on stdout, no display or audio device
    for name, value in (
        ("PYGAME_HIDE_SUPPORT_PROMPT", "1"),
        ("SDL_VIDEODRIVER", "dummy"),
        ("SDL_AUDIODRIVER", "dummy"),
    ):
        os.environ.setdefault(name, value)
    try:
        frame = env.render()
    except NotImplementedError:
        raise ValueError(
            f"env '{env_cfg.name}' does not render; --gif works for: {', '.join(RENDERING_ENVS)}"
        ) from None
    except Exception as exc:  # a Gymnasium renderer: a missing pygame, or no rgb_array mode
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = "; install it with: pip install 'thrust-rl[render]'" if "pygame" in first and "pip" not in first else ""
        raise ValueError(f"env.id={env_cfg.get('id')} cannot render a frame for --gif: {first}{hint}") from None
    if isinstance(frame, tuple):
        frame = frame[0]
    array = np.asarray(frame) if frame is not None else None
    if array is None or array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(
            f"env '{env_cfg.get('id', env_cfg.name)}' renders no RGB frames; --gif works for: "
            f"{', '.join(RENDERING_ENVS)}"
        )
    return array.astype(np.uint8, copy=False)


def _write_gif(path: Path, frames: list[np.ndarray], fps: int = 30) -> None:
    """Save RGB frames [H, W, 3] uint8 as an animated GIF (Pillow)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
