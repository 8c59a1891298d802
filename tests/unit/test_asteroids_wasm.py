"""The Asteroids C core built for wasm32 (zig cc, run by wasmtime) steps bit for bit like the native build behind
the Python class: same seed, same actions, identical buffers and game states on every step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import envs_cython.asteroids
from envs_cython.asteroids import Asteroids

pytest.importorskip("ziglang", reason="needs the ziglang package (pip install ziglang) to build the wasm module")
wasmtime = pytest.importorskip("wasmtime", reason="needs the wasmtime package (pip install wasmtime) to run it")

SOURCE = Path(envs_cython.asteroids.__file__).parent / "asteroids_wasm_main.c"
BUFFERS = (
    "state",
    "observations",
    "actions",
    "rewards",
    "terminals",
    "truncations",
    "final_observations",
)
EXPORTS = ("init", "step", *(f"{name}_ptr" for name in BUFFERS))


def build_wasm(out: Path) -> Path:
    """asteroids_wasm_main.c as a wasm32-wasi reactor, with the flags docs/envs.md gives."""
    wasm = out / "asteroids.wasm"
    command = [
        sys.executable, "-m", "ziglang", "cc", "--target=wasm32-wasi", "-mexec-model=reactor", "-O2",
        "-ffp-contract=off", "-Wl,--no-entry", *(f"-Wl,--export={name}" for name in EXPORTS),
        "-o", str(wasm), str(SOURCE),
    ]  # fmt: skip
    built = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    return wasm


class WasmAsteroids:
    """The wasm module's envs, with its buffers read back as bytes."""

    def __init__(self, wasm: Path, num_envs: int, seed: int, max_steps: int, num_lives: int) -> None:
        engine = wasmtime.Engine()
        self.store = wasmtime.Store(engine)
        module = wasmtime.Module.from_file(engine, str(wasm))
        assert not module.imports, "the module must need no host functions"
        exports = wasmtime.Instance(self.store, module, []).exports(self.store)
        exports["_initialize"](self.store)
        assert exports["init"](self.store, num_envs, seed, max_steps, num_lives) == 1
        self.memory = exports["memory"]
        self._step = exports["step"]
        self.ptr = {name: exports[f"{name}_ptr"](self.store) for name in BUFFERS}

    def read(self, name: str, nbytes: int) -> bytes:
        start = self.ptr[name]
        return bytes(self.memory.read(self.store, start, start + nbytes))

    def step(self, actions: np.ndarray) -> None:
        self.memory.write(self.store, actions.astype("<i4").tobytes(), self.ptr["actions"])
        self._step(self.store)


def gunner(observations: np.ndarray) -> np.ndarray:
    """Turn toward the nearest rock and fire (fire+left 7, fire+right 8, fire 4): it clears waves, so later,
    faster waves are compared too."""
    left = observations[:, 9]
    return np.where(left > 0.01, 7, np.where(left < -0.01, 8, 4)).astype(np.int32)


def test_wasm_build_steps_bit_for_bit_like_the_native_build_for_10000_steps(tmp_path: Path) -> None:
    """16 envs, 10,000 steps: even envs take pre-drawn random actions (now and then an out-of-range int32), odd
    envs a gunner's; observations, rewards, flags, final observations and the whole game state are equal byte
    for byte after construction and after every step."""
    num_envs, seed, max_steps, num_lives, steps = 16, 1234, 700, 3, 10_000
    wasm = WasmAsteroids(build_wasm(tmp_path), num_envs, seed, max_steps, num_lives)
    native = Asteroids(num_envs=num_envs, seed=seed, max_steps=max_steps, num_lives=num_lives)
    rng = np.random.default_rng(0)
    random_actions = rng.integers(0, 10, size=(steps, num_envs)).astype(np.int32)
    odd = rng.random((steps, num_envs)) < 0.01
    random_actions[odd] = rng.integers(-(2**31), 2**31, size=int(odd.sum()), dtype=np.int64).astype(np.int32)
    compared = ("state", "observations", "rewards", "terminals", "truncations")

    def assert_same(t: int) -> None:
        for name in compared:
            mine = getattr(native, "_state" if name == "state" else name)
            assert wasm.read(name, mine.nbytes) == mine.tobytes(), f"{name} differs after step {t}"
        done = native.terminals | native.truncations
        if done.any():
            final = np.frombuffer(wasm.read("final_observations", native.final_observations.nbytes), np.float32)
            final = final.reshape(native.final_observations.shape)
            assert final[done].tobytes() == native.final_observations[done].tobytes(), f"final obs, step {t}"

    assert_same(-1)
    ended = scored = max_wave = 0
    for t in range(steps):
        actions = random_actions[t].copy()
        actions[1::2] = gunner(native.observations)[1::2]
        native.step(actions)
        wasm.step(actions)
        assert_same(t)
        ended += int((native.terminals | native.truncations).sum())
        scored += int((native.rewards > 0).sum())
        max_wave = max(max_wave, int(native.state["wave"].max()))
    assert ended > 100 and scored > 1000 and max_wave >= 3, (ended, scored, max_wave)
