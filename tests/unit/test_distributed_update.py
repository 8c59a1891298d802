"""Data-parallel ``ppo_update`` (thrust_cli.learn.distributed): 2 gloo ranks on halves of a rollout take the same
steps as one process on the whole rollout.

Minibatching that makes the union of the ranks' minibatches the 1-rank minibatch: each rank's minibatch is its
whole local batch (``minibatch_size`` = its T * N), over several epochs and updates, so minibatch k of the two
ranks together is exactly the 1-rank minibatch k, whatever permutation each draws. With prioritized replay every
segment is drawn too (without replacement), and the importance weights come from the all-gathered, global
priorities — the 1-rank weights. What differs is only the order of float sums (and of the samples in a batch).
"""

from __future__ import annotations

import copy
import os
import socket
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from omegaconf import OmegaConf

from envs_cython.cartpole import CartPole
from thrust_cli.learn.collector import Collector
from thrust_cli.learn.distributed import DataParallel, ElasticEnv
from thrust_cli.learn.optim import Adam
from thrust_cli.learn.policies import LSTMPolicy, MLPPolicy
from thrust_cli.learn.ppo import LearnerState, ppo_update
from thrust_cli.learn.rollout import EpisodeTracker, Rollout
from thrust_cli.run.config import compose_config
from thrust_cli.vector.serial import Serial

T, N, UPDATES = 32, 8, 3  # each rank gets N / 2 agents
CASES: dict[str, tuple[str, list[str], dict[str, Any]]] = {
    "mlp-ppo": ("mlp", ["algo=ppo"], {}),
    "mlp-ppo-kl-penalty": ("mlp", ["algo=ppo"], {"kl_coef": 0.5, "target_kl": 0.01}),
    "mlp-vtrace": ("mlp", ["algo=vtrace"], {}),
    "mlp-vtrace-seen-prio": ("mlp", ["algo=vtrace", "algo.prio=true", "algo.bptt_horizon=8"], {"ratios": "seen"}),
    "mlp-ppo-prio": ("mlp", ["algo=ppo", "algo.prio=true", "algo.bptt_horizon=8"], {}),
    "lstm-ppo": ("lstm", ["algo=ppo", "algo.bptt_horizon=8"], {}),
    "lstm-vtrace-prio": ("lstm", ["algo=vtrace", "algo.prio=true", "algo.bptt_horizon=8"], {}),
}


def _algo(overrides: list[str], extra: dict[str, Any], batch: int) -> SimpleNamespace:
    cfg = compose_config([*overrides, "algo.update_epochs=3", f"algo.minibatch_size={batch}"], with_hydra=False)
    return SimpleNamespace(**(OmegaConf.to_container(cfg.algo) | extra))  # type: ignore[operator]


def _policy(kind: str) -> Any:
    torch.manual_seed(0)
    return MLPPolicy(4, 2, hidden_size=16) if kind == "mlp" else LSTMPolicy((4,), 2, hidden_size=16)


def _rollouts(kind: str, L: int) -> list[Rollout]:
    """UPDATES real CartPole rollouts of N agents (collected by the initial policy)."""
    policy = _policy(kind)
    vec = Serial(partial(CartPole), num_envs=N, seed=0)
    collector = Collector(vec, policy, T, torch.device("cpu"), EpisodeTracker(N, 100), lambda _: False, L)
    vec.reset(seed=0)
    out = []
    for _ in range(UPDATES):
        buf = collector.collect()
        assert buf is not None
        out.append(copy.deepcopy(buf))
    vec.close()
    return out


def _half(buf: Rollout, rank: int) -> Rollout:
    """Agents [rank * N/2, (rank + 1) * N/2) of ``buf``."""
    part = slice(rank * N // 2, (rank + 1) * N // 2)
    fields = {k: v for k, v in vars(buf).items()}
    out = {}
    for key, value in fields.items():
        if value is None:
            out[key] = None
        elif key == "last_values":
            out[key] = value[part].clone()
        else:
            out[key] = value[:, part].clone()
    return Rollout(**out)


def _train(kind: str, overrides: list[str], extra: dict[str, Any], dp: DataParallel | None) -> dict[str, torch.Tensor]:
    L = 8 if kind == "lstm" else 1
    rollouts = _rollouts(kind, L)
    policy = _policy(kind)
    optimizer = Adam(policy.parameters(), lr=3e-3, eps=1e-5)
    agents = N if dp is None else N // 2
    algo = _algo(overrides, extra, T * agents)
    learner = LearnerState(kl_coef=algo.kl_coef)
    for update, buf in enumerate(rollouts):
        local = buf if dp is None else _half(buf, dp.rank)
        ppo_update(policy, optimizer, local, algo, update * T * N, update / UPDATES, learner, dp)
    return {k: v.detach().clone() for k, v in policy.state_dict().items()} | {
        "kl_coef": torch.tensor(learner.kl_coef or 0.0)
    }


def _worker(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    dp = DataParallel(rank, 2, rank, ElasticEnv(rank, 2, rank, "test", 0, 0), "gloo")
    results = {name: _train(kind, overrides, extra, dp) for name, (kind, overrides, extra) in CASES.items()}
    torch.save(results, Path(out) / f"rank{rank}.pt")
    dp.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, dict[str, torch.Tensor]]]:
    """Every case trained by 2 gloo ranks (spawned once for all cases); the parameters of each rank."""
    out = tmp_path_factory.mktemp("ddp")
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_on_halves_equal_one_process_on_the_whole_rollout(case: str, two_ranks: list[Any]) -> None:
    kind, overrides, extra = CASES[case]
    reference = _train(kind, overrides, extra, None)
    initial = _policy(kind).state_dict()
    moved = max((reference[k] - initial[k]).abs().max().item() for k in initial)
    assert moved > 1e-3, "the updates must move the parameters for the comparison to mean anything"
    for rank, params in enumerate(two_ranks):
        for key, value in reference.items():
            torch.testing.assert_close(params[case][key], value, rtol=0, atol=1e-5, msg=f"rank {rank}: {key}")


def test_every_rank_holds_the_same_parameters(two_ranks: list[Any]) -> None:
    for case in CASES:
        for key, value in two_ranks[0][case].items():
            assert torch.equal(two_ranks[1][case][key], value), f"{case}: {key} differs between ranks"
