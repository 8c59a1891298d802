"""`thrust demo build` and the demo policies shipped in thrust_cli/web/models (docs/demo.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from thrust_cli.commands.demo import DEMOS, MODELS_DIR, Demo, build_demo, random_policy_returns
from thrust_cli.commands.safetensors_format import load_safetensors_policy, read_safetensors_metadata
from thrust_cli.run.config import compose_config
from thrust_cli.vector.envs import make_env

pytest.importorskip("safetensors")
pytest.importorskip("onnxruntime")


def test_build_demo_trains_evaluates_and_exports_into_the_store(tmp_path: Path) -> None:
    demo = Demo("cartpole", "test", ("env=cartpole", "debug=fast", "train.progress=none"), episodes=8)
    model = build_demo(demo, models_dir=tmp_path / "models", work_dir=tmp_path / "work")
    store = tmp_path / "models" / "cartpole"
    assert sorted(p.name for p in store.iterdir()) == ["model.json", "policy.onnx", "policy.safetensors"]
    assert json.loads((store / "model.json").read_text()) == model
    assert model["id"] == "demo-cartpole" and model["architecture"] == "mlp"
    assert model["eval"]["episodes"] == 8 and model["random"]["episodes"] == 8
    assert model["trained"]["global_step"] == 4096
    assert model["command"] == "thrust train env=cartpole debug=fast train.progress=none"
    assert isinstance(load_safetensors_policy(store / "policy.safetensors"), torch.nn.Module)


def test_unknown_demo_game_is_one_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "thrust_cli", "demo", "build", "--game", "pong", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == "error: unknown demo game 'pong'; allowed: cartpole, snake, asteroids, all"


def test_random_policy_returns_cartpole_matches_known_scale() -> None:
    """A uniformly random CartPole policy lasts ~22 steps (return = length)."""
    cfg = compose_config(["env=cartpole"], with_hydra=False)
    result = random_policy_returns(cfg.env, episodes=200, seed=3)
    assert result["mean_return"] == pytest.approx(result["mean_length"])
    assert 15 < result["mean_return"] < 30


@pytest.mark.parametrize("game", list(DEMOS))
def test_shipped_demo_policy_is_complete_and_beats_random(game: str) -> None:
    """Each shipped demo: the files the site serves, model.json's figures, and a short greedy check that the
    safetensors weights (what the page runs) beat the random policy it is compared with."""
    store = MODELS_DIR / game
    model = json.loads((store / "model.json").read_text())
    assert model["id"] == f"demo-{game}" and model["game"] == game
    assert model["command"].startswith(f"thrust train env={game}")
    assert model["eval"]["mean_return"] > model["random"]["mean_return"]
    metadata = read_safetensors_metadata(store / "policy.safetensors")
    assert metadata["architecture"] == model["architecture"]
    assert (store / "policy.safetensors").stat().st_size + (store / "policy.onnx").stat().st_size < 400_000
    policy = load_safetensors_policy(store / "policy.safetensors")
    cfg = compose_config([f"env={game}"], with_hydra=False)

    def first_episode_returns(act: str) -> float:
        """Mean return of each agent's first episode, cut at 500 steps (trained Asteroids lasts ~2,700)."""
        env = make_env(cfg.env, num_envs=1 if game == "snake" else 16, seed=7)
        env.reset(7)
        rng = np.random.default_rng(0)
        returns = np.zeros(env.num_agents)
        running = np.ones(env.num_agents, dtype=bool)
        with torch.no_grad():
            for _ in range(500):
                if act == "greedy":
                    actions = policy(torch.from_numpy(env.observations))[0].argmax(-1).numpy()
                else:
                    actions = rng.integers(0, env.single_action_space.n, env.num_agents)
                env.step(actions.astype(env.actions.dtype))
                returns[running] += env.rewards[running]
                running &= ~(env.terminals | env.truncations)
                if not running.any():
                    break
        env.close()
        return float(returns.mean())

    assert first_episode_returns("greedy") > first_episode_returns("random")
