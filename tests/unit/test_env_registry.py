"""The env registry (thrust_cli/vector/envs.py): built-in names, and user envs through ``env=custom``.

The user envs are small NumPy envs written into a temporary directory put on ``sys.path``, as a user's module
on ``PYTHONPATH`` would be.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

from envs_cython.base import Env
from thrust_cli.run.config import compose_config
from thrust_cli.vector.envs import (
    ENV_NAMES,
    EntryPointCreator,
    agents_per_env,
    env_creator,
    load_entry_point,
    make_env,
    make_vector,
)

# A user's env: each of `agents` agents per instance flips a coin; action == coin pays `reward`, and every
# episode lasts `length` steps (a truncation). Deterministic per seed.
COIN_ENV = """
import gymnasium
import numpy as np

from envs_cython.base import Buffers, Env


class Coin(Env):
    def __init__(self, num_envs=1, buffers=None, seed=0, length=4, reward=1.0, agents=1):
        self.single_observation_space = gymnasium.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.single_action_space = gymnasium.spaces.Discrete(2)
        self._init_buffers(num_envs * agents, buffers)
        self.length, self.reward = length, reward
        self.rng = np.random.default_rng(seed)
        self.tick = np.zeros(self.num_agents, dtype=np.int64)
        self.returns = np.zeros(self.num_agents)
        self.done_returns = []
        self.seed_used = seed

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.observations[:, 0] = self.rng.integers(0, 2, self.num_agents)
        self.tick[:] = 0
        self.returns[:] = 0

    def step(self, actions=None):
        if actions is not None:
            self.actions[:] = actions
        self.rewards[:] = (self.actions == self.observations[:, 0]) * self.reward
        self.returns += self.rewards
        self.tick += 1
        self.terminals[:] = False
        self.truncations[:] = self.tick >= self.length
        ended = np.flatnonzero(self.truncations)
        self.final_observations[ended] = self.observations[ended]
        self.done_returns.extend(self.returns[ended])
        self.returns[ended] = 0
        self.tick[ended] = 0
        self.observations[:, 0] = self.rng.integers(0, 2, self.num_agents)

    def log(self):
        if not self.done_returns:
            return {}
        out = {"episode_return": float(np.mean(self.done_returns)), "n": len(self.done_returns)}
        self.done_returns = []
        return out


def make_coin(num_envs, buffers=None, seed=0, **kwargs):
    return Coin(num_envs, buffers, seed, **kwargs)


NOT_CALLABLE = 3


def not_an_env(num_envs, buffers=None, seed=0):
    return object()
"""


@pytest.fixture
def user_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``coin_env`` (the env above), ``broken_env`` (raises on import) and ``half_built`` (imports a missing
    compiled submodule, like an env whose extension was not built) on ``sys.path``."""
    (tmp_path / "coin_env.py").write_text(COIN_ENV)
    (tmp_path / "broken_env.py").write_text("raise RuntimeError('the module is broken')\n")
    (tmp_path / "half_built").mkdir()
    (tmp_path / "half_built" / "__init__.py").write_text("from .core import Core\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("coin_env", "broken_env", "half_built"):
        sys.modules.pop(name, None)


def custom(entry_point: str | None = "coin_env:Coin", num_envs: int = 4, **kwargs: object) -> object:
    """An ``env`` config section for ``env=custom``."""
    return OmegaConf.create({"name": "custom", "entry_point": entry_point, "num_envs": num_envs, "kwargs": kwargs})


@pytest.mark.parametrize("name", ["cartpole", "memory", "pendulum", "snake"])
def test_builtin_env_names_build_their_envs(name: str) -> None:
    env_cfg = compose_config([f"env={name}"], with_hydra=False).env
    env = make_env(env_cfg, num_envs=1, seed=3)
    try:
        assert isinstance(env, Env)
        assert env.num_agents == agents_per_env(env_cfg)
        env.reset()
        env.step(np.zeros(env.actions.shape, dtype=env.actions.dtype))
    finally:
        env.close()


def test_an_unknown_env_name_is_one_line_listing_the_allowed_names() -> None:
    with pytest.raises(ValueError, match=r"unknown env 'nope'; allowed: cartpole, gym, .*custom") as err:
        env_creator(OmegaConf.create({"name": "nope"}))
    assert "\n" not in str(err.value)
    assert "custom" in ENV_NAMES


def test_custom_entry_point_builds_the_class_with_its_kwargs_and_seed(user_modules: Path) -> None:
    env: Any = make_env(custom(length=3, reward=2.0), num_envs=5, seed=11)
    assert type(env).__name__ == "Coin" and env.num_agents == 5
    assert (env.length, env.reward, env.seed_used) == (3, 2.0, 11)
    env.reset()
    for _ in range(3):
        env.step(env.observations[:, 0].astype(np.int32))  # always right: reward 2 per step
    assert env.log() == {"episode_return": 6.0, "n": 5}


def test_a_factory_function_is_an_entry_point_too(user_modules: Path) -> None:
    env = make_env(custom("coin_env:make_coin", agents=3), num_envs=2)
    assert type(env).__name__ == "Coin" and env.num_agents == 6


def test_agents_per_env_of_a_custom_env_is_read_from_the_env(user_modules: Path) -> None:
    assert agents_per_env(custom(agents=3)) == 3
    assert agents_per_env(custom()) == 1


def test_a_custom_env_steps_in_the_serial_vectorizer_over_its_buffers(user_modules: Path) -> None:
    cfg = OmegaConf.create(
        {"env": custom(num_envs=6, length=2), "vec": {"name": "serial", "num_objects": 3}, "seed": 0}
    )
    vec = make_vector(cfg)
    try:
        vec.reset(seed=0)
        obs, *_ = vec.recv()
        vec.send(obs[:, 0].astype(np.int32))
        vec.send(1 - vec.recv()[0][:, 0].astype(np.int32))  # one right, one wrong: return 1 per episode
        _, rewards, _, truncations, _, _ = vec.recv()
        assert truncations.all() and (rewards == 0).all()
        assert vec.log() == {"episode_return": 1.0, "n": 6.0}
    finally:
        vec.close()


def test_the_custom_creator_pickles_for_spawned_workers(user_modules: Path) -> None:
    creator = env_creator(custom(length=7))
    assert isinstance(creator, EntryPointCreator)
    copy = pickle.loads(pickle.dumps(creator))
    assert copy == creator and copy(num_envs=2, buffers=None, seed=0).length == 7


def test_a_custom_env_trains_and_logs_its_episode_return(user_modules: Path, tmp_path: Path) -> None:
    from thrust_cli.commands.train import train

    cfg = compose_config(
        ["env=custom", "env.entry_point=coin_env:Coin", "+env.kwargs.length=4", "debug=fast", "logger=none",
         "train.progress=none"],
        with_hydra=False,
    )  # fmt: skip
    summary = train(cfg, tmp_path / "run")
    assert summary["status"] == "completed" and summary["global_step"] >= 4096
    assert 0.0 <= summary["mean_return_last_100"] <= 4.0
    assert sorted((tmp_path / "run" / "checkpoints").glob("step_*.pt"))


@pytest.mark.parametrize(
    "entry_point, message",
    [
        ("coin_env", "is invalid: expected 'package.module:Name'"),
        (":Coin", "is invalid: expected 'package.module:Name'"),
        ("coin_env:", "is invalid: expected 'package.module:Name'"),
        ("coin env:Coin", "is invalid: expected 'package.module:Name'"),
        ("no_such_module:Env", "no module 'no_such_module'; put its directory on PYTHONPATH"),
        ("no_such_package.sub:Env", "no module 'no_such_package'; put its directory on PYTHONPATH"),
        ("coin_env:Nope", "'coin_env' has no attribute 'Nope'"),
        ("coin_env:Coin.nope", "'Coin' has no attribute 'nope'"),
        ("coin_env:NOT_CALLABLE", "names a int, not an env class or factory"),
        ("broken_env:Env", "importing 'broken_env' raised RuntimeError: the module is broken"),
        ("half_built:Core", "importing 'half_built' failed: No module named 'half_built.core'"),
    ],
)
def test_a_bad_entry_point_is_one_line_naming_it(user_modules: Path, entry_point: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        load_entry_point(entry_point)
    assert str(err.value).startswith(f"env.entry_point={entry_point!r}")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_kwargs_or_a_non_env_are_one_line_errors(user_modules: Path) -> None:
    with pytest.raises(ValueError, match=r"env.kwargs=\{'lenght': 3\}: .*unexpected keyword argument 'lenght'"):
        make_env(custom(lenght=3), num_envs=1)
    with pytest.raises(ValueError, match=r"made a object, which lacks the env API .*derive it from envs_cython\.base"):
        make_env(custom("coin_env:not_an_env"), num_envs=1)


def test_custom_without_an_entry_point_says_what_to_set() -> None:
    with pytest.raises(ValueError, match=r"env=custom needs env\.entry_point=package\.module:Name"):
        env_creator(custom(None))
