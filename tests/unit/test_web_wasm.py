"""The browser demo's wasm modules (thrust_cli.web.wasm_build, thrust_cli/web/wasm/): each game's module, run by
wasmtime with no imports, steps its agents byte for byte like the native Python env, and its C policy forward pass
gives torch's logits (MLP stacked / shared, tanh / relu / gelu; LSTM one-hot / float, state reset on episode ends)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ziglang", reason="needs the ziglang package (pip install ziglang) to build the wasm modules")
wasmtime = pytest.importorskip("wasmtime", reason="needs the wasmtime package (pip install wasmtime) to run them")
torch = pytest.importorskip("torch")

from envs_cython.asteroids import Asteroids  # noqa: E402
from envs_cython.cartpole import CartPole  # noqa: E402
from envs_cython.snake import Snake  # noqa: E402
from thrust_cli.learn.policies import LSTMPolicy, MLPPolicy  # noqa: E402
from thrust_cli.web import wasm_build  # noqa: E402

OBS = {"cartpole": (4, np.float32), "asteroids": (56, np.float32), "snake": (121, np.int8)}
NUM_ACTIONS = {"cartpole": 2, "asteroids": 10, "snake": 4}
ACTIVATIONS = {"tanh": 0, "relu": 1, "gelu": 2}


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One build of each game's module for the whole file."""
    return wasm_build.build_all(tmp_path_factory.mktemp("wasm"))


class Module:
    """One instance of a game's module, with its buffers read back as NumPy arrays."""

    def __init__(self, path: Path, game: str) -> None:
        engine = wasmtime.Engine()
        self.store = wasmtime.Store(engine)
        module = wasmtime.Module.from_file(engine, str(path))
        assert not module.imports, "the module must need no host functions"
        self.exports = wasmtime.Instance(self.store, module, []).exports(self.store)
        self.memory = self.exports["memory"]
        self.game = game
        self.call("_initialize")

    def call(self, name: str, *args: int) -> Any:
        return self.exports[name](self.store, *args)

    def init(self, n: int, seed: int) -> int:
        ok = self.call("init", n, seed)
        self.n = self.call("num_agents")
        return int(ok)

    def read(self, name: str, count: int, dtype: Any) -> np.ndarray:
        start = self.call(name)
        nbytes = count * np.dtype(dtype).itemsize
        return np.frombuffer(bytes(self.memory.read(self.store, start, start + nbytes)), dtype)

    def write(self, ptr: int, data: bytes) -> None:
        self.memory.write(self.store, data, ptr)

    def observations(self) -> np.ndarray:
        size, dtype = OBS[self.game]
        return self.read("observations_ptr", self.n * size, dtype).reshape(self.n, size)

    def logits(self) -> np.ndarray:
        a = NUM_ACTIONS[self.game]
        return self.read("logits_ptr", self.n * a, np.float32).reshape(self.n, a)

    def actions(self) -> np.ndarray:
        return self.read("actions_ptr", self.n, np.int32)

    def dones(self) -> np.ndarray:
        return (self.read("terminals_ptr", self.n, np.uint8) | self.read("truncations_ptr", self.n, np.uint8)) > 0

    def stats(self) -> np.ndarray:
        return self.read("stats_ptr", 8, np.float64)

    def step(self, actions: np.ndarray | None = None) -> None:
        if actions is not None:
            self.write(self.call("actions_ptr"), actions.astype("<i4").tobytes())
        self.call("step")

    def tensor(self, name: str, numel: int) -> int:
        self.write(self.call("name_buffer"), name.encode() + b"\0")
        return int(self.call("policy_tensor", numel))

    def load(self, policy: torch.nn.Module) -> None:
        """Write every tensor of the policy's state_dict; policy_ready turns 1 with the last required one."""
        tensors = list(policy.state_dict().items())
        tensors.sort(key=lambda item: item[0].startswith("critic_head"))  # the required ones first
        for k, (name, value) in enumerate(tensors):
            assert self.call("policy_ready") == 0, f"ready before {name}"
            ptr = self.tensor(name, value.numel())
            assert ptr != 0, name
            self.write(ptr, value.detach().numpy().astype("<f4").tobytes())
            if k == len(tensors) - 3:  # actor_head.bias, the last required tensor
                break
        assert self.call("policy_ready") == 1
        for name, value in tensors[-2:]:
            ptr = self.tensor(name, value.numel())  # critic_head.*: accepted, ignored
            self.write(ptr, value.detach().numpy().astype("<f4").tobytes())
        assert self.call("policy_ready") == 1


def native_env(game: str, n: int, seed: int) -> Any:
    """The native env that agent i of init(n, seed) must equal (the spec's construction)."""
    if game == "cartpole":
        env = CartPole(num_envs=n, seed=seed)
        env.reset()
        return env
    if game == "asteroids":
        return Asteroids(num_envs=n, seed=seed)
    width = max(16, math.ceil(math.sqrt(64 * n)))
    return Snake(
        num_envs=1, num_snakes=n, width=width, height=width, num_food=2 * n, vision=5, max_steps=1000, seed=seed
    )


def scripted(game: str, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A policy that survives longer than random: CartPole pushes toward the pole's lean (its episodes reach the
    500-step truncation), Asteroids turns toward the nearest rock and fires, Snake steps onto food, else onto an
    empty cell of its view."""
    if game == "cartpole":
        return (obs[:, 2] + obs[:, 3] > 0).astype(np.int32)
    if game == "asteroids":
        left = obs[:, 9]
        return np.where(left > 0.01, 7, np.where(left < -0.01, 8, 4)).astype(np.int32)
    view = obs.reshape(-1, 11, 11)
    neighbours = np.stack([view[:, 4, 5], view[:, 6, 5], view[:, 5, 4], view[:, 5, 6]], axis=1)  # up down left right
    score = np.where(neighbours == 2, 2.0, np.where(neighbours == 0, 1.0, 0.0)) + rng.random(neighbours.shape) * 0.5
    return score.argmax(axis=1).astype(np.int32)


@pytest.mark.parametrize(("game", "n"), [("cartpole", 8), ("asteroids", 12), ("snake", 16)])
def test_module_steps_byte_for_byte_like_the_native_env_for_10000_steps(
    modules: dict[str, Path], game: str, n: int
) -> None:
    """Same seed, same actions (even agents random, now and then out of range; odd agents scripted): observations,
    rewards, terminals and truncations are equal byte for byte after init and after every step (Snake: the
    padded grid too); render() reports the native state; the statistics count the native env's episodes."""
    seed, steps = 1234, 10_000
    wasm = Module(modules[game], game)
    assert wasm.init(n, seed) == 1
    assert (wasm.call("obs_size"), wasm.call("num_actions"), wasm.n) == (OBS[game][0], NUM_ACTIONS[game], n)
    native = native_env(game, n, seed)
    rng = np.random.default_rng(0)
    random_actions = rng.integers(0, NUM_ACTIONS[game], size=(steps, n)).astype(np.int32)
    odd = rng.random((steps, n)) < 0.01
    random_actions[odd] = rng.integers(-(2**31), 2**31, size=int(odd.sum()), dtype=np.int64).astype(np.int32)
    ended = truncated = 0

    def assert_same(t: int) -> None:
        assert wasm.observations().tobytes() == native.observations.tobytes(), f"observations, step {t}"
        assert wasm.read("rewards_ptr", n, np.float32).tobytes() == native.rewards.tobytes(), f"rewards, step {t}"
        assert wasm.read("terminals_ptr", n, np.uint8).tobytes() == native.terminals.tobytes(), f"step {t}"
        assert wasm.read("truncations_ptr", n, np.uint8).tobytes() == native.truncations.tobytes(), f"step {t}"
        if game == "snake":
            size = wasm.call("grid_width") * wasm.call("grid_height")
            assert wasm.read("grid_ptr", size, np.int8).tobytes() == native._grid[0].tobytes(), f"grid, step {t}"

    assert_same(-1)
    for t in range(steps):
        actions = random_actions[t].copy()
        actions[1::2] = scripted(game, native.observations, rng)[1::2]
        native.step(actions)
        wasm.step(actions)
        assert_same(t)
        ended += int((native.terminals | native.truncations).sum())
        truncated += int(native.truncations.sum())
        if game == "asteroids" or t % 997 == 0:  # Asteroids: the whole rendered game state, every step
            assert_render(wasm, native, game, t % n)
    log = native.log()
    stats = wasm.stats()
    assert stats[0] == log["n"] == ended and stats[3] == steps * n
    assert stats[1] == pytest.approx(log["episode_return"] * log["n"])
    assert stats[2] == pytest.approx(log["episode_length"] * log["n"])
    assert stats[5] == 100 and np.isfinite(stats[4]) and stats[6] >= stats[4]
    assert ended > 50, ended
    if game == "cartpole":  # the scripted agents reach the 500-step limit
        assert truncated > 0
    wasm.call("stats_reset")
    assert wasm.stats()[0] == 0 and np.isnan(wasm.stats()[4]) and np.isnan(wasm.stats()[6])


def assert_render(wasm: Module, native: Any, game: str, agent: int) -> None:
    """render(agent) holds the native state, in the layout demo.h documents."""
    count = wasm.call("render", agent)
    out = wasm.read("render_ptr", count, np.float32)
    if game == "cartpole":
        assert count == 3
        state = native.state[agent].astype(np.float32)
        assert (out[0], out[1]) == (state[0], state[2])
    elif game == "asteroids":
        s = native.state[agent]
        num_rocks = int((s["rocks"]["size"] > 0).sum())
        num_bullets = int((s["bullets"]["life"] > 0).sum())
        assert count == 9 + 5 * num_rocks + 1 + 2 * num_bullets
        assert out[0] == s["ship_x"] and out[1] == np.float32(192) - s["ship_y"]
        assert out[2] == pytest.approx(2 * math.pi * ((32 - int(s["heading"])) % 32) / 32)
        assert list(out[5:9]) == [s["lives"], s["score"], s["wave"], num_rocks]
        rocks = out[9 : 9 + 5 * num_rocks].reshape(num_rocks, 5)
        assert np.array_equal(rocks[:, 0], s["rocks"]["x"][:num_rocks])
        assert np.array_equal(rocks[:, 3], s["rocks"]["shape"][:num_rocks])
        live = s["rocks"]["size"] > 0
        assert np.array_equal(rocks[:, 0], s["rocks"]["x"][live])
        assert np.array_equal(rocks[:, 1], np.float32(192) - s["rocks"]["y"][live])
        bullets = out[10 + 5 * num_rocks :].reshape(num_bullets, 2)
        flying = s["bullets"]["life"] > 0
        assert np.array_equal(bullets[:, 0], s["bullets"]["x"][flying])
        assert np.array_equal(bullets[:, 1], np.float32(192) - s["bullets"]["y"][flying])
    else:
        assert count == 4
        stride = wasm.call("grid_width")
        row, col = native.heads[agent]
        pad = wasm.call("grid_pad")
        assert list(out) == [row + pad, col + pad, native.lengths[agent], native.directions[agent]]
        assert stride == native.width + 2 * pad == wasm.call("grid_height")
    assert wasm.call("render", -1) == 0 and wasm.call("render", wasm.n) == 0


@pytest.mark.parametrize("game", ["cartpole", "asteroids", "snake"])
def test_init_rejects_bad_agent_counts_and_holds_4096_agents(modules: dict[str, Path], game: str) -> None:
    """init(0 | -1 | 4097) returns 0 and keeps the agents built before; 4096 agents build and step."""
    wasm = Module(modules[game], game)
    for bad in (0, -1, 4097):
        assert wasm.init(bad, 1) == 0
    assert wasm.init(3, 1) == 1
    for bad in (0, -1, 4097):
        assert wasm.init(bad, 1) == 0
        assert wasm.n == 3
    assert wasm.init(4096, 5) == 1
    wasm.call("act", 2)
    wasm.step()
    assert wasm.stats()[3] == 4096
    if game == "snake":
        assert wasm.call("grid_width") == 512 + 10  # max(16, ceil(sqrt(64 * 4096))) + 2 * 5


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """torch on one thread: its per-op overhead for these tiny batches grows with threads on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def as_policy_input(game: str, obs: np.ndarray) -> np.ndarray:
    """Observations [B, obs] as the policies take them (Snake: [B, 11, 11] int8 views), writable for torch."""
    return obs.reshape(-1, 11, 11).copy() if game == "snake" else obs.copy()


def perturbed(policy: torch.nn.Module, seed: int, input_gain: float = 1.0) -> torch.nn.Module:
    """The policy with noise on every weight, a larger actor head and first layer weights times ``input_gain``
    (CartPole's observations are small), so that logits spread and argmax is not decided by rounding."""
    generator = torch.Generator().manual_seed(seed)
    first = ("trunk.weights.0", "trunk.0.weight", "encoder.0.weight")
    with torch.no_grad():
        for name, param in policy.named_parameters():
            scale = 0.5 if name == "actor_head.weight" else 0.0 if name == "actor_head.bias" else 0.1
            param.add_(scale * torch.randn(param.shape, generator=generator))
            if name in first:
                param.mul_(input_gain)
    return policy.eval()


CASES = {
    "mlp-stacked-tanh-cartpole": ("cartpole", "mlp", {"activation": "tanh", "shared": False}),
    "mlp-shared-relu-cartpole": ("cartpole", "mlp", {"activation": "relu", "shared": True, "num_layers": 3}),
    "mlp-stacked-gelu-asteroids": ("asteroids", "mlp", {"activation": "gelu", "shared": False}),
    "mlp-shared-tanh-snake": ("snake", "mlp", {"activation": "tanh", "shared": True}),
    "lstm-onehot-snake": ("snake", "lstm", {"num_codes": 5}),
    "lstm-float-asteroids": ("asteroids", "lstm", {}),
    "lstm-float-cartpole": ("cartpole", "lstm", {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_forward_pass_equals_torch_over_1000_steps(modules: dict[str, Path], case: str) -> None:
    """act(0) on real observations for 1,000 steps: logits within 1e-4 of torch's (max abs), greedy actions equal
    torch's argmax wherever the top two logits are more than 1e-3 apart; an LSTM carries its state and zeroes it
    after each episode end, as the rollout does, and policy_reset_state() zeroes every agent's."""
    game, arch, options = CASES[case]
    n, steps = (16 if game == "snake" else 8), 1000
    size, num_actions = OBS[game][0], NUM_ACTIONS[game]
    torch.manual_seed(3)
    policy: Any
    if arch == "mlp":
        options = {"num_layers": 2, **options}
        policy = MLPPolicy(size, num_actions, hidden_size=64, **options)
        config = (0, 64, options["num_layers"], ACTIVATIONS[options["activation"]], int(options["shared"]), 0)
    else:
        shape = (11, 11) if game == "snake" else (size,)
        policy = LSTMPolicy(shape, num_actions, hidden_size=32, num_codes=options.get("num_codes"))
        config = (1, 32, 1, 0, 0, options.get("num_codes", 0))
    policy = perturbed(policy, seed=7, input_gain=20.0 if game == "cartpole" else 1.0)
    wasm = Module(modules[game], game)
    assert wasm.init(n, 99) == 1
    assert wasm.call("policy_config", *config) == 1
    wasm.load(policy)
    state = policy.initial_state(n) if arch == "lstm" else None
    done = np.zeros(n, dtype=bool)
    observations, logits, actions, expected = [], [], [], []
    resets = 0
    with torch.no_grad(), single_thread():
        for t in range(steps):
            obs = wasm.observations()
            if state is not None:
                if t == steps // 2:
                    wasm.call("policy_reset_state")
                    state = policy.initial_state(n)
                keep = torch.from_numpy(~done).float()[None, :, None]
                state = (state[0] * keep, state[1] * keep)
                out, _, state = policy(torch.from_numpy(as_policy_input(game, obs)), state)
                expected.append(out.numpy())
                resets += int(done.sum())
            wasm.call("act", 0)
            observations.append(obs)
            logits.append(wasm.logits())
            actions.append(wasm.actions())
            wasm.step()
            done = wasm.dones()
        if state is None:  # an MLP's logits depend on the observation only: one batch
            batch = as_policy_input(game, np.concatenate(observations))
            expected = list(policy(torch.from_numpy(batch))[0].numpy().reshape(steps, n, num_actions))
    mine, theirs, chosen = np.stack(logits), np.stack(expected), np.stack(actions)
    worst = float(np.abs(mine - theirs).max())
    top2 = np.sort(theirs, axis=2)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 1e-3
    assert np.array_equal(chosen[clear], theirs.argmax(axis=2)[clear])
    compared = int(clear.sum())
    assert worst <= 1e-4, worst
    assert compared > 0.9 * n * steps
    assert len(np.unique(chosen)) >= min(num_actions, 4), np.bincount(chosen.ravel())
    if arch == "lstm":
        assert resets > 5, resets


def test_sampling_follows_the_softmax_and_random_actions_are_uniform(modules: dict[str, Path]) -> None:
    """act(1) on fixed observations draws each agent's action from softmax(logits) (chi-square over 10 Asteroids
    actions, expected counts summed over agents); act(2) draws uniform actions in range, with or without a
    policy."""
    wasm = Module(modules["asteroids"], "asteroids")
    assert wasm.init(64, 5) == 1
    for _ in range(3):
        wasm.call("act", 2)
        assert ((wasm.actions() >= 0) & (wasm.actions() < 10)).all()
    torch.manual_seed(0)
    policy = perturbed(MLPPolicy(56, 10, hidden_size=64), seed=1)
    with torch.no_grad():
        policy.actor_head.weight.mul_(0.3)  # moderate logits: every action has some probability
    assert wasm.call("policy_config", 0, 64, 2, 0, 0, 0) == 1
    wasm.load(policy)
    obs = torch.from_numpy(wasm.observations().copy())
    with torch.no_grad():
        probs = torch.softmax(policy(obs)[0], dim=1).numpy().astype(np.float64)
    counts = np.zeros(10)
    rounds = 400
    for _ in range(rounds):
        wasm.call("act", 1)
        counts += np.bincount(wasm.actions(), minlength=10)
    expected = probs.sum(axis=0) * rounds
    assert expected.min() > 20
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 40, (chi2, counts, expected)  # 9 degrees of freedom: p < 1e-5 above 40
    counts = np.zeros(10)
    for _ in range(rounds):
        wasm.call("act", 2)
        actions = wasm.actions()
        assert ((actions >= 0) & (actions < 10)).all()
        counts += np.bincount(actions, minlength=10)
    expected_uniform = rounds * 64 / 10
    assert float(((counts - expected_uniform) ** 2 / expected_uniform).sum()) < 40, counts


def test_policy_tensor_rejects_unknown_names_and_wrong_sizes(modules: dict[str, Path]) -> None:
    """policy_tensor returns 0 for an unknown name (dist.*, a typo, the other trunk layout) or a wrong numel;
    policy_ready stays 0 until every required tensor was given; policy_config rejects bad configs."""
    wasm = Module(modules["snake"], "snake")
    assert wasm.init(4, 1) == 1
    assert wasm.call("policy_ready") == 0
    bad_configs = [
        (2, 64, 2, 0, 0, 0),  # unknown arch
        (0, 0, 2, 0, 0, 0),  # hidden 0
        (0, 64, 9, 0, 0, 0),  # too many layers
        (0, 64, 2, 3, 0, 0),  # unknown activation
        (0, 64, 2, 0, 2, 0),  # shared not 0/1
        (0, 64, 2, 0, 0, 5),  # num_codes for an mlp
        (1, 64, 1, 0, 0, 300),  # too many codes
    ]
    for config in bad_configs:
        assert wasm.call("policy_config", *config) == 0, config
        assert wasm.call("policy_ready") == 0
    assert wasm.call("policy_config", 1, 16, 1, 0, 0, 5) == 1
    assert wasm.tensor("encoder.0.weight", 16 * 121 * 5 + 1) == 0
    assert wasm.tensor("dist.log_std", 4) == 0
    assert wasm.tensor("trunk.weights.0", 2 * 121 * 16) == 0
    assert wasm.tensor("encoder.0.weights", 16 * 121 * 5) == 0
    policy = LSTMPolicy((11, 11), 4, hidden_size=16, num_codes=5)
    tensors = policy.state_dict()
    for name in ("critic_head.weight", "critic_head.bias"):  # accepted, but not needed
        assert wasm.tensor(name, tensors.pop(name).numel()) != 0
    for name, value in tensors.items():
        assert wasm.call("policy_ready") == 0, name
        assert wasm.tensor(name, value.numel()) != 0, name
    assert wasm.call("policy_ready") == 1
    assert wasm.call("policy_config", 1, 16, 1, 0, 0, 5) == 1  # a new config needs every tensor again
    assert wasm.call("policy_ready") == 0
    float_game = Module(modules["cartpole"], "cartpole")
    assert float_game.init(2, 1) == 1
    assert float_game.call("policy_config", 1, 16, 1, 0, 0, 5) == 0  # one-hot codes need integer observations
    assert float_game.call("policy_config", 0, 64, 2, 0, 0, 0) == 1
    assert float_game.tensor("trunk.weights.0", 2 * 4 * 64) != 0
    assert float_game.tensor("trunk.0.weight", 64 * 4) == 0  # the shared layout's name
    assert float_game.call("policy_ready") == 0


def test_build_is_cached_and_reports_a_failure_in_one_line(
    modules: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second build returns the cached file untouched; a broken source raises a one-line RuntimeError naming
    zig's error; an unknown game is a ValueError."""
    path = modules["cartpole"]
    mtime = path.stat().st_mtime_ns
    assert wasm_build.build("cartpole", path.parent) == path and path.stat().st_mtime_ns == mtime
    broken = tmp_path / "wasm"
    broken.mkdir()
    for source in wasm_build.WASM_DIR.glob("*.h"):
        (broken / source.name).write_bytes(source.read_bytes())
    (broken / "cartpole_demo.c").write_text("int init(int n, unsigned s) { return n + ; }\n")
    monkeypatch.setattr(wasm_build, "WASM_DIR", broken)
    with pytest.raises(RuntimeError, match="error") as failure:
        wasm_build.build("cartpole", tmp_path / "out")
    assert "\n" not in str(failure.value)
    assert not list((tmp_path / "out").iterdir())  # no partial module left behind
    with pytest.raises(ValueError, match="unknown game"):
        wasm_build.build("pong", tmp_path)
