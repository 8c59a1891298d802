"""Map the ``env`` config group to env constructors, and build vectorizers from config."""

from __future__ import annotations

from functools import partial
from typing import Any

from envs_cython.base import Env
from thrust_cli.vector.serial import EnvCreator, Serial


def env_creator(env_cfg: Any) -> EnvCreator:
    """Return ``creator(num_envs=..., buffers=..., seed=...)`` for the env named by ``env_cfg.name``."""
    if env_cfg.name == "cartpole":
        from envs_cython.cartpole import CartPole

        return partial(CartPole, max_steps=env_cfg.max_steps)
    if env_cfg.name == "gym":
        from envs_cython.gym_adapter import GymnasiumEnv

        return partial(GymnasiumEnv, env_cfg.id, **dict(env_cfg.kwargs))
    if env_cfg.name == "busy":
        from envs_cython.busy import Busy

        return partial(Busy, work=env_cfg.work, obs_dim=env_cfg.obs_dim, max_steps=env_cfg.max_steps)
    if env_cfg.name == "memory":
        from envs_cython.memory import Memory

        return partial(Memory, k=env_cfg.k)
    if env_cfg.name == "snake":
        from envs_cython.snake import Snake

        kwargs = {k: env_cfg[k] for k in env_cfg if k not in ("name", "num_envs")}
        return partial(Snake, **kwargs)
    if env_cfg.name == "pendulum":
        from envs_cython.pendulum import Pendulum

        return partial(Pendulum, max_steps=env_cfg.max_steps, g=env_cfg.g)
    if env_cfg.name == "asteroids":
        from envs_cython.asteroids import Asteroids

        return partial(Asteroids, max_steps=env_cfg.max_steps, num_lives=env_cfg.num_lives)
    raise ValueError(f"unknown env '{env_cfg.name}'; allowed: cartpole, gym, busy, memory, snake, pendulum, asteroids")


def agents_per_env(env_cfg: Any) -> int:
    """Agents one env instance holds (Snake: the snakes of one board; 1 for single-agent envs)."""
    return int(env_cfg.num_snakes) if env_cfg.name == "snake" else 1


def make_env(env_cfg: Any, num_envs: int, seed: int = 0) -> Env:
    """One env object with ``num_envs`` instances (no vectorizer), e.g. for evaluation."""
    return env_creator(env_cfg)(num_envs=num_envs, buffers=None, seed=seed)


def make_vector(cfg: Any, seed: int | None = None) -> Any:
    """The vectorizer named by ``cfg.vec.name`` over ``cfg.env.num_envs`` envs."""
    seed = cfg.seed if seed is None else seed
    if cfg.vec.name == "serial":
        return Serial(env_creator(cfg.env), cfg.env.num_envs, cfg.vec.num_objects, seed=seed)
    if cfg.vec.name == "multiprocessing":
        from thrust_cli.vector.multiprocessing import Multiprocessing

        return Multiprocessing(
            env_creator(cfg.env),
            cfg.env.num_envs,
            num_workers=resolve_num_workers(cfg.vec.num_workers, cfg.env.num_envs),
            batch_size=cfg.vec.batch_size,
            seed=seed,
            start_method=cfg.vec.start_method,
        )
    raise ValueError(f"unknown vectorizer '{cfg.vec.name}'; allowed: serial, multiprocessing")


def resolve_num_workers(num_workers: Any, num_envs: int) -> int:
    """``auto``: the most workers, at most one per CPU core, that divide ``num_envs`` evenly."""
    if num_workers != "auto":
        return int(num_workers)
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(w for w in range(1, max(1, min(cores, num_envs)) + 1) if num_envs % w == 0)
