"""The learner's update (thrust_cli.learn.ppo.ppo_update): V-trace recomputation, prioritized replay, fault checks."""

from __future__ import annotations

import copy
import json
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from envs_cython.cartpole import CartPole
from thrust_cli.commands.evaluate import evaluate
from thrust_cli.commands.train import train
from thrust_cli.learn.advantage import gae, vtrace
from thrust_cli.learn.collector import Collector
from thrust_cli.learn.optim import Adam
from thrust_cli.learn.policies import MLPPolicy
from thrust_cli.learn.ppo import TrainingError, _to_segments, ppo_update
from thrust_cli.learn.rollout import EpisodeTracker
from thrust_cli.run.config import compose_config
from thrust_cli.vector.serial import Serial


def rollout(T: int = 32, N: int = 8) -> tuple[MLPPolicy, object]:
    torch.manual_seed(0)
    vec = Serial(partial(CartPole), num_envs=N, seed=0)
    policy = MLPPolicy(4, 2, hidden_size=16)
    collector = Collector(vec, policy, T, torch.device("cpu"), EpisodeTracker(N, 100), lambda _: False)
    vec.reset(seed=0)
    buf = collector.collect()
    vec.close()
    return policy, buf


def algo_cfg(name: str, **overrides: object) -> SimpleNamespace:
    cfg = compose_config([f"algo={name}", "algo.update_epochs=1", "algo.minibatch_size=64"], with_hydra=False)
    return SimpleNamespace(**(OmegaConf.to_container(cfg.algo) | overrides))  # type: ignore[operator]


def test_vtrace_on_fresh_data_gives_the_gae_targets() -> None:
    policy, buf = rollout()
    returns = {}
    for name in ("ppo", "vtrace"):
        model = copy.deepcopy(policy)
        optimizer = Adam(model.parameters(), lr=0.0)  # the policy stays the behaviour policy: ratios are 1
        _, _, returns[name] = ppo_update(model, optimizer, copy.deepcopy(buf), algo_cfg(name), 0)
    torch.testing.assert_close(returns["vtrace"], returns["ppo"], rtol=1e-5, atol=1e-5)


def test_vtrace_recomputes_targets_with_the_current_policy() -> None:
    """The learner's policy has moved away from the behaviour policy: its targets are V-trace's with the current
    log-probs, computed here directly, and differ from GAE's."""
    policy, buf = rollout()
    stale = copy.deepcopy(policy)
    with torch.no_grad():
        for p in stale.parameters():
            p.add_(0.3 * torch.randn_like(p))
        logits, _ = stale(buf.obs.flatten(0, 1))
        target, _ = stale.dist.evaluate(logits, buf.actions.flatten())
    algo = algo_cfg("vtrace", rho_clip=1.2, c_clip=0.9)
    _, expected = vtrace(
        buf.rewards.T, buf.values.T, buf.next_values().T, buf.terminals.T, buf.dones.T,
        buf.logprobs.T, target.view_as(buf.logprobs).T, algo.gamma, algo.gae_lambda, 1.2, 0.9, algo.rho_pg_clip,
    )  # fmt: skip
    model = copy.deepcopy(stale)
    _, _, vt_returns = ppo_update(model, Adam(model.parameters(), lr=0.0), buf, algo, 0)
    torch.testing.assert_close(vt_returns, expected.T.reshape(-1), rtol=1e-5, atol=1e-5)
    _, _, gae_returns = ppo_update(copy.deepcopy(stale), Adam(stale.parameters(), lr=0.0), buf, algo_cfg("ppo"), 0)
    assert (vt_returns - gae_returns).abs().max() > 1e-2


def test_prioritized_replay_samples_segments_by_the_priority_formula(monkeypatch: pytest.MonkeyPatch) -> None:
    """P_s = (sum_t |A[s, t]|)^alpha / sum, over segments of bptt_horizon steps of one agent (REFERENCE.md §5)."""
    policy, buf = rollout()
    algo = algo_cfg("ppo", prio=True, prio_alpha=0.8, bptt_horizon=8)
    adv, _ = gae(buf.rewards.T, buf.values.T, buf.next_values().T, buf.terminals.T, buf.dones.T, algo.gamma,
                 algo.gae_lambda)  # fmt: skip
    segments = _to_segments(adv.T, 8)  # [T/8 * N, 8]
    priorities = segments.abs().sum(1).pow(0.8) + 1e-8
    drawn: list[torch.Tensor] = []
    real = torch.multinomial

    def recording(probs: torch.Tensor, *args, **kwargs):  # type: ignore[no-untyped-def]
        drawn.append(probs.clone())
        return real(probs, *args, **kwargs)

    monkeypatch.setattr(torch, "multinomial", recording)
    stats, _, _ = ppo_update(policy, Adam(policy.parameters(), lr=1e-3), buf, algo, 0, 0.5)
    assert drawn and stats and all(torch.isfinite(s.policy_loss) for s in stats)
    torch.testing.assert_close(drawn[0], priorities / priorities.sum())


def test_adaptive_kl_coefficient_is_updated_and_checkpointed(tmp_path: Path) -> None:
    cfg = compose_config(["algo.kl_coef=1.0", "algo.target_kl=0.0001", "train.total_timesteps=4096", "logger=none",
                          "train.progress=none"])  # fmt: skip
    train(cfg, tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["kl_coef"] > 1.0  # the KL overshoots a tiny target: the coefficient doubles
    state = torch.load(next((tmp_path / "checkpoints").glob("step_*.pt")), weights_only=False)
    assert state["learner"]["kl_coef"] == lines[-1]["kl_coef"]


def test_non_finite_parameters_stop_the_run_naming_the_parameter_and_keep_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_step = Adam.step
    calls = {"n": 0}

    def poisoned_step(self):  # type: ignore[no-untyped-def]
        real_step(self)
        calls["n"] += 1
        if calls["n"] == 200:
            with torch.no_grad():
                self.params[-1].fill_(float("inf"))

    monkeypatch.setattr(Adam, "step", poisoned_step)
    cfg = compose_config(["train.progress=none", "train.total_timesteps=100000", "train.checkpoint_interval=2048",
                          "logger=none"])  # fmt: skip
    with pytest.raises(TrainingError, match=r"non-finite parameter '[\w.]+' in the update at global_step \d+"):
        train(cfg, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "non-finite parameter" in summary["error"]
    checkpoints = sorted((tmp_path / "checkpoints").glob("step_*.pt"))
    latest = torch.load(checkpoints[-1], weights_only=False)
    assert latest["global_step"] < summary["global_step"]  # nothing saved after the fault
    assert all(torch.isfinite(t).all() for t in latest["policy"].values())
    assert evaluate(tmp_path, episodes=2)["episodes"] == 2


OPTIONS = {
    "vtrace": ["algo=vtrace"],
    "vtrace-seen-ratios-no-pg-rho": [
        "algo=vtrace",
        "algo.ratios=seen",
        "algo.rho_pg_clip=null",
        "algo.update_epochs=3",
    ],
    "prio": ["algo.prio=true"],
    "kl-penalty": ["algo.clip_coef=null", "algo.kl_coef=1.0", "algo.target_kl=0.01"],
    "dual-clip+anneal": ["algo.dual_clip_c=3", "algo.anneal_clip=true", "algo.vf_clip_coef=0.2"],
    "lstm+vtrace+prio": ["policy=lstm", "algo=vtrace", "algo.prio=true", "algo.bptt_horizon=8"],
    "pendulum": ["env=pendulum", "algo.num_steps=64"],
    "pendulum-squash": ["env=pendulum", "algo.num_steps=64", "policy.squash=true"],
    "pendulum-lstm-vtrace": ["env=pendulum", "algo.num_steps=64", "policy=lstm", "algo=vtrace"],
}


@pytest.mark.parametrize("options", list(OPTIONS.values()), ids=list(OPTIONS))
def test_every_option_trains_and_evaluates(tmp_path: Path, options: list[str]) -> None:
    cfg = compose_config([*options, "train.total_timesteps=4096", "train.progress=none", "logger=none"])
    summary = train(cfg, tmp_path)
    assert summary["status"] == "completed" and summary["global_step"] >= 4096
    assert evaluate(tmp_path, episodes=3)["episodes"] == 3


def test_config_errors_of_the_algo_options() -> None:
    from thrust_cli.run.config import ConfigError

    for overrides, message in [
        (["algo.kl_coef=1"], "algo.kl_coef (adaptive KL penalty) needs algo.target_kl"),
        (["algo.dual_clip_c=1"], "algo.dual_clip_c=1.0 is invalid: must be > 1 or null"),
        (["algo.dual_clip_c=3", "algo.clip_coef=null"], "algo.dual_clip_c needs algo.clip_coef"),
        (["algo.prio=true", "algo.num_steps=20"], "must be a multiple of algo.bptt_horizon=16 with algo.prio=true"),
        (["algo=vtrace", "algo.rho_clip=0"], "algo.rho_clip=0.0 is invalid: must be > 0"),
        (["algo=sac"], "unknown option algo=sac; allowed: ppo, vtrace"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            compose_config(overrides)
