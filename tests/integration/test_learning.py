"""Learning runs. The smoke test runs in the fast suite (CI); the full solves carry @pytest.mark.slow."""

from __future__ import annotations

from pathlib import Path

import pytest

from thrust_cli.commands.evaluate import evaluate
from thrust_cli.commands.train import train
from thrust_cli.run.config import compose_config


def test_smoke_cartpole_learns_within_a_few_seconds(tmp_path: Path) -> None:
    """A short run must lift the return well above a random policy's ~22."""
    cfg = compose_config(["train.progress=none", "train.target_return=150", "train.target_window=20"])
    summary = train(cfg, tmp_path)
    assert summary["status"] == "solved", summary


@pytest.mark.timeout(120)
@pytest.mark.parametrize("batch_size", ["null", "16"], ids=["sync", "async"])
def test_smoke_cartpole_learns_with_the_multiprocessing_vectorizer(tmp_path: Path, batch_size: str) -> None:
    cfg = compose_config(
        [
            "vec=multiprocessing",
            "vec.num_workers=2",
            f"vec.batch_size={batch_size}",
            "train.progress=none",
            "train.target_return=150",
            "train.target_window=20",
        ]
    )
    summary = train(cfg, tmp_path)
    assert summary["status"] == "solved", summary


def test_multiprocessing_sync_training_equals_serial(tmp_path: Path) -> None:
    """Same seed, same trajectories: the sync multiprocessing run reproduces the serial one step for step."""
    common = ["train.progress=none", "train.total_timesteps=8192", "logger=none"]
    serial = train(compose_config(common), tmp_path / "serial")
    multi = train(compose_config([*common, "vec=multiprocessing", "vec.num_workers=2"]), tmp_path / "multi")
    assert serial["mean_return_last_100"] == multi["mean_return_last_100"]
    assert serial["episodes"] == multi["episodes"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shipped_defaults_solve_cartpole(tmp_path: Path, seed: int) -> None:
    """`thrust train env=cartpole` with the shipped defaults: 100-episode eval mean >= 475."""
    cfg = compose_config([f"seed={seed}", "train.progress=none"])
    train(cfg, tmp_path)
    result = evaluate(tmp_path, episodes=100)
    assert result["mean_return"] >= 475, result


ALGO_OPTIONS = {
    "vtrace": ["algo=vtrace"],
    "prio": ["algo.prio=true"],
    "vtrace+prio": ["algo=vtrace", "algo.prio=true"],
    "kl-penalty": ["algo.clip_coef=null", "algo.kl_coef=1.0", "algo.target_kl=0.01"],
    "kl-penalty+clip": ["algo.kl_coef=1.0", "algo.target_kl=0.01"],
    "dual-clip": ["algo.dual_clip_c=3"],
    "value-clip": ["algo.vf_clip_coef=0.2"],
    "anneal-clip": ["algo.anneal_clip=true"],
}


@pytest.mark.slow
@pytest.mark.parametrize("options", list(ALGO_OPTIONS.values()), ids=list(ALGO_OPTIONS))
def test_every_algo_option_solves_cartpole(tmp_path: Path, options: list[str]) -> None:
    """Each `algo` option with the CartPole preset: 100-episode eval mean >= 475 for at least 2 of seeds 1-3
    (issue 5). One seed alone is not a property of the option: the same seed takes another path on another CPU
    (torch's kernels differ by instruction set), e.g. value clipping's seed 1 evaluates 500 on an AVX2 machine and
    241 on this AVX-512 one, where seeds 2 and 3 give 500. Seeds after the second success are not run."""
    solved, results = 0, []
    for seed in (1, 2, 3):
        run = tmp_path / f"seed{seed}"
        train(compose_config([*options, f"seed={seed}", "train.progress=none", "logger=none"]), run)
        results.append(evaluate(run, episodes=100)["mean_return"])
        solved += results[-1] >= 475
        if solved == 2:
            break
    assert solved >= 2, (options, results)


@pytest.mark.slow
def test_vtrace_with_the_async_vectorizer_solves_cartpole(tmp_path: Path) -> None:
    options = ["algo=vtrace", "vec=multiprocessing", "vec.num_workers=2", "vec.batch_size=16"]
    train(compose_config([*options, "train.progress=none", "logger=none"]), tmp_path)
    assert evaluate(tmp_path, episodes=100)["mean_return"] >= 475


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_pendulum_gaussian_policy_reaches_minus_200(tmp_path: Path) -> None:
    """`thrust train env=pendulum` (Gaussian head): 100-episode eval mean >= -200, Gymnasium's usual bar."""
    train(compose_config(["env=pendulum", "train.progress=none", "logger=none"]), tmp_path)
    result = evaluate(tmp_path, episodes=100)
    assert result["mean_return"] >= -200, result


@pytest.mark.slow
def test_gym_acrobot_learns(tmp_path: Path) -> None:
    cfg = compose_config(["env=gym", "env.id=Acrobot-v1", "train.total_timesteps=200000", "train.progress=none"])
    train(cfg, tmp_path)
    assert evaluate(tmp_path, episodes=20)["mean_return"] > -150


def test_lstm_trains_and_evaluates_end_to_end(tmp_path: Path) -> None:
    cfg = compose_config(["env=memory", "policy=lstm", "train.total_timesteps=4096", "train.progress=none"])
    assert train(cfg, tmp_path)["global_step"] >= 4096
    assert evaluate(tmp_path, episodes=8)["episodes"] == 8


@pytest.mark.slow
def test_memory_env_lstm_remembers_and_mlp_is_at_chance(tmp_path: Path) -> None:
    """The cue is seen 8 steps before the query: only memory beats a coin flip."""
    results = {}
    for policy in ("lstm", "mlp"):
        train(compose_config(["env=memory", f"policy={policy}", "train.progress=none"]), tmp_path / policy)
        results[policy] = evaluate(tmp_path / policy, episodes=400)["mean_return"]
    assert results["lstm"] >= 0.95, results
    assert 0.4 <= results["mlp"] <= 0.6, results


def _asteroids_baselines() -> dict[str, float]:
    """Mean returns (score / 100) over 100 episodes of tests/bench/asteroids_baselines.py's two policies."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / "asteroids_baselines.py"
    spec = importlib.util.spec_from_file_location("asteroids_baselines", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {policy: float(module.baseline_scores(policy).mean()) / 100 for policy in ("random", "rotate-and-fire")}


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_asteroids_shipped_defaults_beat_random_tenfold_and_the_scripted_gunner(tmp_path: Path, seed: int) -> None:
    """`thrust train env=asteroids` (shipped defaults, ~8 min on 2 cores), then a 100-episode eval: mean score
    >= 10x a uniformly random policy's and above rotate-and-fire's (issue 12)."""
    summary = train(compose_config(["env=asteroids", f"seed={seed}", "train.progress=none", "logger=none"]), tmp_path)
    assert summary["wall_time_s"] < 600, summary
    result = evaluate(tmp_path, episodes=100)
    bars = _asteroids_baselines()
    assert result["mean_return"] >= 10 * bars["random"], (result, bars)
    assert result["mean_return"] > bars["rotate-and-fire"], (result, bars)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_asteroids_lstm_trains(tmp_path: Path) -> None:
    """policy=lstm on the Asteroids preset, 6M steps (~4 min at ~26k SPS): a 100-episode eval of at least 1.5x a
    random policy's score (seed 1 measured 1.77x; the LSTM does not yet reach the MLP's 12x in this budget)."""
    overrides = ["env=asteroids", "policy=lstm", "train.total_timesteps=6000000", "train.progress=none", "logger=none"]
    train(compose_config(overrides), tmp_path)
    result = evaluate(tmp_path, episodes=100)
    assert result["mean_return"] >= 1.5 * _asteroids_baselines()["random"], result
