"""Map the ``env`` config group to env constructors, and build vectorizers from config.

Thrust's own envs are looked up by ``env.name``. Any other env plugs in through ``env=custom``:
``env.entry_point`` names a class (or factory) as ``package.module:Name``, imported when the env is built, and
``env.kwargs`` are its extra constructor arguments::

    thrust train env=custom env.entry_point=walk:Walk +env.kwargs.length=8

The class takes ``num_envs``, ``buffers`` and ``seed`` like every Thrust env (``envs_cython.base.Env``) and must
be importable by every process that builds it (the trainer, vectorizer workers, ``thrust eval``), e.g. from a
directory on ``PYTHONPATH`` or an installed package. docs/tutorials/c-env.md writes one in C.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from envs_cython.base import Env
from thrust_cli.vector.serial import EnvCreator, Serial

#: the names ``env.name`` may take
ENV_NAMES = ("cartpole", "gym", "busy", "memory", "snake", "pendulum", "asteroids", "custom")
#: the attributes every env object has (the env API of docs/envs.md)
ENV_ATTRIBUTES = ("single_observation_space", "single_action_space", "num_agents", "buffers", "reset", "step", "log")


def load_entry_point(entry_point: str) -> Any:
    """Import the object an entry point names.

    Args:
        entry_point: ``"package.module:Name"``; ``Name`` may be dotted (``module:Class.factory``).

    Returns:
        The object, which must be callable (an env class or a factory).

    Raises:
        ValueError: a malformed entry point, a module that cannot be imported (or raised on import), a missing
            name or an object that is not callable; one line that names ``env.entry_point``.
    """
    module_name, sep, attr = str(entry_point).partition(":")
    if not sep or not module_name.strip() or not attr.strip() or " " in entry_point:
        raise ValueError(
            f"env.entry_point={entry_point!r} is invalid: expected 'package.module:Name', e.g. 'walk:Walk'"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module_name == exc.name or module_name.startswith(exc.name + ".")):
            # the module was found but imports something missing, e.g. its compiled extension not yet built
            raise ValueError(f"env.entry_point={entry_point!r}: importing {module_name!r} failed: {exc}") from exc
        raise ValueError(
            f"env.entry_point={entry_point!r}: no module {exc.name!r}; put its directory on PYTHONPATH or "
            f"install it (working directory: {os.getcwd()})"
        ) from exc
    except Exception as exc:  # the user's module failed on import: one line, not a traceback
        raise ValueError(
            f"env.entry_point={entry_point!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            owner = getattr(obj, "__name__", type(obj).__name__)
            raise ValueError(f"env.entry_point={entry_point!r}: {owner!r} has no attribute {part!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"env.entry_point={entry_point!r} names a {type(obj).__name__}, not an env class or factory")
    return obj


@dataclass(frozen=True)
class EntryPointCreator:
    """An env creator for ``env=custom``: imports ``entry_point`` and calls it with the env's kwargs.

    A plain dataclass rather than a closure, so that it pickles by value for vectorizer workers started with
    ``spawn`` or ``forkserver`` (each worker imports the entry point itself).

    Attributes:
        entry_point: ``"package.module:Name"`` of the env class or factory.
        kwargs: extra constructor arguments (``env.kwargs``).
    """

    entry_point: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self, num_envs: int, buffers: Any = None, seed: int = 0) -> Env:
        """Build the env over ``buffers``; ValueError (one line) if it fails or lacks the env API."""
        factory = load_entry_point(self.entry_point)
        try:
            env = factory(num_envs=num_envs, buffers=buffers, seed=seed, **self.kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"env.entry_point={self.entry_point!r} with env.kwargs={self.kwargs}: {exc}") from exc
        missing = [name for name in ENV_ATTRIBUTES if not hasattr(env, name)]
        if missing:
            raise ValueError(
                f"env.entry_point={self.entry_point!r} made a {type(env).__name__}, which lacks the env API "
                f"({', '.join(missing)}); derive it from envs_cython.base.Env or CEnv (docs/envs.md)"
            )
        return env


def env_creator(env_cfg: Any) -> EnvCreator:
    """The constructor of the env a config names.

    Args:
        env_cfg: the ``env`` section of a run config; ``env_cfg.name`` picks the env, the other keys are its
            parameters (``env=custom``: ``entry_point`` and ``kwargs``).

    Returns:
        ``creator(num_envs=..., buffers=..., seed=...)``, which builds one env object.

    Raises:
        ValueError: an unknown ``env.name``, or ``env=custom`` without an ``env.entry_point``.
    """
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
    if env_cfg.name == "custom":
        entry_point = env_cfg.get("entry_point")
        if not entry_point:
            raise ValueError("env=custom needs env.entry_point=package.module:Name (the env class to import)")
        return EntryPointCreator(str(entry_point), dict(env_cfg.get("kwargs") or {}))
    raise ValueError(f"unknown env '{env_cfg.name}'; allowed: {', '.join(ENV_NAMES)}")


def agents_per_env(env_cfg: Any) -> int:
    """Agents one env instance holds (Snake: the snakes of one board; 1 for single-agent envs).

    For ``env=custom`` this builds one instance and reads its ``num_agents``.
    """
    if env_cfg.name == "snake":
        return int(env_cfg.num_snakes)
    if env_cfg.name == "custom":
        probe = make_env(env_cfg, num_envs=1)
        try:
            return int(probe.num_agents)
        finally:
            probe.close()
    return 1


def make_env(env_cfg: Any, num_envs: int, seed: int = 0) -> Env:
    """One env object with ``num_envs`` instances and its own buffers (no vectorizer), e.g. for evaluation.

    Args:
        env_cfg: the ``env`` section of a run config.
        num_envs: env instances in the object.
        seed: the object's seed (instance ``i`` is seeded ``seed + i``).

    Raises:
        ValueError: the env cannot be built (see :func:`env_creator`; the env's own argument checks).
    """
    return env_creator(env_cfg)(num_envs=num_envs, buffers=None, seed=seed)


def make_vector(cfg: Any, seed: int | None = None) -> Any:
    """The vectorizer a run config names (``cfg.vec.name``) over ``cfg.env.num_envs`` envs.

    Args:
        cfg: a validated run config (its ``env``, ``vec`` and ``seed``).
        seed: base seed of the envs; ``cfg.seed`` when ``None``.

    Returns:
        A :class:`~thrust_cli.vector.serial.Serial` or :class:`~thrust_cli.vector.multiprocessing.Multiprocessing`.

    Raises:
        ValueError: an unknown vectorizer name, or an env that cannot be built.
    """
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
    """The worker count ``vec.num_workers`` means.

    Args:
        num_workers: an int, or ``"auto"``: the most workers, at most one per CPU core, that divide ``num_envs``
            evenly.
        num_envs: env instances to split between the workers.
    """
    if num_workers != "auto":
        return int(num_workers)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(w for w in range(1, max(1, min(cores, num_envs)) + 1) if num_envs % w == 0)
