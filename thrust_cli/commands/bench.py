"""``thrust bench``: env stepping in one process with random actions, the advantage kernels, and end-to-end
training SPS."""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from thrust_cli.run.config import validate
from thrust_cli.vector.envs import make_env
from thrust_cli.vector.spaces import random_actions

ENV_SIZES = (1, 64, 1024, 4096)
ADVANTAGE_SIZE = (8192, 64)  # rows x steps: the size PufferLib's CPU advantage op is quoted at
REFERENCE_TIMEOUT_S = 120.0  # compiling or running one C driver; past it, the row is skipped
# The config keys a driver's --bench takes as options (`--work 500`); the others bench its env's defaults.
DRIVER_OPTIONS = {"busy": ("work", "obs_dim", "max_steps")}


def repeats_for(seconds: float, most: int) -> int:
    """Timed repetitions of a fixed-size measurement for ``--seconds``: ``most`` at 1 s and above, fewer below
    it (a quick ``--seconds 0.05`` bench stays quick), never under 5 (their median stays meaningful)."""
    return max(5, min(most, round(most * seconds)))


def median_rate(run: Callable[[int], Any], agents: int, seconds: float, repeats: int = 5) -> float:
    """Median agent-steps/s of ``run(calls)`` (``calls`` steps of ``agents`` agents in a loop of its own, so
    timing adds no call per step) over ``repeats`` timings of about ``seconds`` each; ``calls`` is calibrated
    first by doubling until a run lasts ``seconds / 20``."""
    calls, elapsed = 1, 0.0
    while elapsed < 0.05 * seconds:
        calls *= 2
        begin = time.perf_counter()
        run(calls)
        elapsed = time.perf_counter() - begin
    calls = max(1, int(calls * seconds / elapsed))
    rates = []
    for _ in range(repeats):
        begin = time.perf_counter()
        run(calls)
        rates.append(calls * agents / (time.perf_counter() - begin))
    return statistics.median(rates)


def env_steps_per_second(env_cfg: Any, num_envs: int, seconds: float, repeats: int = 5) -> float:
    """Median agent-steps/s of ``env.step`` over ``repeats`` timings of about ``seconds`` each.

    Actions are drawn in advance from the action space (64 arrays cycled) so the figure is the env's alone.
    """
    env = make_env(env_cfg, num_envs=num_envs, seed=0)
    env.reset(0)
    actions = random_actions(env.single_action_space, env.num_agents, 64, np.random.default_rng(0))

    def run(calls: int) -> None:
        for i in range(calls):
            env.actions[:] = actions[i & 63]
            env.step()

    try:
        return median_rate(run, env.num_agents, seconds, repeats)
    finally:
        env.close()


def vector_steps_per_second(run: Any, seconds: float, repeats: int = 5) -> float:
    """Median agent-steps/s of ``recv()``/``send()`` through the vectorizer of ``run`` with pre-drawn random
    actions (no learner)."""
    from thrust_cli.vector.envs import make_vector

    vec = make_vector(run)
    try:
        vec.reset(0)
        actions = random_actions(vec.single_action_space, vec.num_agents, 16, np.random.default_rng(0))
        rates = []
        for _ in range(repeats + 1):  # the first round warms up
            steps, i, begin = 0, 0, time.perf_counter()
            while True:
                _, _, _, _, _, ids = vec.recv()
                vec.send(actions[i & 15][: len(ids)])
                steps += len(ids)
                i += 1
                if time.perf_counter() - begin >= seconds:  # every call: one can take 0.1 s (8192 gym envs)
                    break
            rates.append(steps / (time.perf_counter() - begin))
        return statistics.median(rates[1:])
    finally:
        vec.close()


def compare_vectorizers(
    cfg: DictConfig, num_envs: int, seconds: float, echo: Callable[[str], Any] | None
) -> dict[str, float]:
    """Serial vs multiprocessing sync vs async (half the envs per batch) over ``num_envs`` envs."""
    from thrust_cli.vector.envs import resolve_num_workers

    workers = resolve_num_workers("auto", num_envs)
    contenders = {
        "serial": {"vec": {"name": "serial", "num_objects": 1}},
        f"multiprocessing sync ({workers} workers)": {
            "vec": {"name": "multiprocessing", "num_workers": workers, "batch_size": None, "start_method": None}
        },
    }
    if workers > 1:
        contenders[f"multiprocessing async ({workers} workers, batch {num_envs // 2})"] = {
            "vec": {
                "name": "multiprocessing",
                "num_workers": workers,
                "batch_size": num_envs // 2,
                "start_method": None,
            }
        }
    result = {}
    base = OmegaConf.merge(cfg, {"env": {"num_envs": num_envs}})
    for name, override in contenders.items():
        run = validate(OmegaConf.merge(base, {"vec": None}, override))  # type: ignore[arg-type]
        result[name] = vector_steps_per_second(run, seconds)
        if echo:
            echo(f"vec {name:48s} {result[name] / 1e6:8.2f} M steps/s ({num_envs} envs)")
    return result


def c_reference(env_cfg: Any, reps: int = 15) -> tuple[dict[str, float], str | None]:
    """Compile ``envs_cython/<env>/<env>_main.c`` with gcc -O3 and run its ``--bench`` (plain C loops over 4096
    envs next to the core's step-all loop, medians of ``reps`` timings; busy's with the config's ``work``,
    ``obs_dim`` and ``max_steps``).

    Returns:
        ``({loop name: steps/s}, None)``, or ``({}, why)`` with a one-line reason where there is no such program,
        no C compiler, or the program does not build, fails or prints no figures: the row is skipped, never the
        bench.
    """
    import envs_cython

    name = str(env_cfg.name)
    source = Path(envs_cython.__file__).parent / name / f"{name}_main.c"
    compiler = shutil.which("gcc") or shutil.which("cc")
    if not source.is_file():
        return {}, f"{name} has no C driver (envs_cython/{name}/{name}_main.c)"
    if compiler is None:
        return {}, "no C compiler (gcc or cc) on PATH"
    keys = DRIVER_OPTIONS.get(name, ())
    options = [arg for key in keys for arg in (f"--{key.replace('_', '-')}", str(getattr(env_cfg, key)))]
    with tempfile.TemporaryDirectory() as tmp:
        binary = str(Path(tmp) / "bench")
        build = [compiler, "-std=c99", "-O3", "-ffp-contract=off", str(source), "-lm", "-o", binary]
        steps = (("build", build), ("run", [binary, "--bench", "--reps", str(reps), *options]))
        for what, command in steps:
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=REFERENCE_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired) as exc:
                why = "timed out" if isinstance(exc, subprocess.TimeoutExpired) else str(exc)
                return {}, f"{what} of {source.name} failed: {why}"
            if done.returncode != 0:
                lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
                first = next((line for line in lines if "error" in line), lines[0])  # gcc: the first error
                return {}, f"{what} of {source.name} exited {done.returncode}: {first.strip()}"
    found = re.finditer(r"^(.+?)\s+([\d.]+)M steps/s", done.stdout, re.M)
    figures = {m[1].strip(): float(m[2]) * 1e6 for m in found}
    return figures, None if figures else f"{source.name} --bench printed no 'M steps/s' lines"


def ale_asteroids(seconds: float, repeats: int = 5) -> tuple[dict[str, float], str | None]:
    """Steps/s of the Arcade Learning Environment's Asteroids on one core: ``gymnasium.make("ALE/Asteroids-v5",
    frameskip=1)`` (one env, emulator frames at 1 per step) and ALE's own ``AtariVectorEnv`` over 16 envs with one
    thread (its default preprocessing: 84x84 grayscale, 4 stacked frames; ``frameskip=1``). Random actions.

    Returns:
        ``({row: steps/s}, None)``, or ``({}, why)`` without ale-py.
    """
    try:
        import ale_py
        import gymnasium
    except ImportError:
        return {}, "ale-py is not installed (pip install 'thrust-rl[peers]' or pip install ale-py)"
    gymnasium.register_envs(ale_py)
    rng = np.random.default_rng(0)
    figures: dict[str, float] = {}
    env: Any = gymnasium.make("ALE/Asteroids-v5", frameskip=1)
    env.reset(seed=0)
    actions = rng.integers(0, int(env.action_space.n), 1024)

    def run_one(calls: int) -> None:
        for i in range(calls):
            _, _, terminated, truncated, _ = env.step(int(actions[i & 1023]))
            if terminated or truncated:
                env.reset()

    figures["ALE Asteroids-v5, frameskip=1, 1 env"] = median_rate(run_one, 1, seconds, repeats)
    env.close()
    from ale_py.vector_env import AtariVectorEnv

    vec: Any = AtariVectorEnv("asteroids", num_envs=16, num_threads=1, frameskip=1)
    vec.reset(seed=0)
    batches = rng.integers(0, int(vec.single_action_space.n), (64, 16))

    def run_vector(calls: int) -> None:
        for i in range(calls):
            vec.step(batches[i & 63])

    figures["ALE AtariVectorEnv, frameskip=1, 16 envs, 1 thread"] = median_rate(run_vector, 16, seconds, repeats)
    vec.close()
    return figures, None


# peers measured beside an env's own figures by `thrust bench` (issue 12: Asteroids against the ALE's)
PEERS = {"asteroids": ale_asteroids}


def median_ms(fn: Callable[[], Any], repeats: int, sync: Callable[[], Any] | None = None, warmup: int = 1) -> float:
    """Median wall milliseconds of one ``fn()`` over ``repeats`` calls after ``warmup`` ones; ``sync`` (e.g.
    ``torch.cuda.synchronize``) runs before the clock starts and before it stops, so queued GPU work counts."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if sync is not None:
            sync()
        begin = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        times.append(time.perf_counter() - begin)
    return 1e3 * statistics.median(times)


def bench_device_advantage(rows: int, horizon: int, repeats: int, device: str) -> dict[str, float] | None:
    """Median ms of one GAE / V-trace call on ``device`` tensors laid out as a rollout's ``.T``: the fused
    Triton kernel (``*_triton``) against the torch loop over T (``*_torch_loop``); None without Triton.

    On CUDA that is what training runs; on the CPU only under ``TRITON_INTERPRET=1`` (a check of this code).
    """
    import torch

    from thrust_cli.learn import advantage

    if advantage._triton_kernels() is None:
        return None
    gen = torch.Generator().manual_seed(0)
    shape = (horizon, rows)  # [T, N] buffers, passed as [N, T] views as training does
    r, v, nv, mu = (torch.randn(shape, generator=gen) for _ in range(4))
    dones = torch.rand(shape, generator=gen) < 0.02
    term = dones & (torch.rand(shape, generator=gen) < 0.5)
    pi = mu + 0.3 * torch.randn(shape, generator=gen)
    r, v, nv, term, dones, mu, pi = (x.to(device).T for x in (r, v, nv, term, dones, mu, pi))
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else None
    g, vt = (r, v, nv, term, dones), (r, v, nv, term, dones, mu, pi)
    with torch.no_grad():
        return {
            "gae_triton": median_ms(lambda: advantage.gae_triton(*g, 0.99, 0.95), repeats, sync, warmup=2),
            "gae_torch_loop": median_ms(lambda: advantage.gae_torch(*g, 0.99, 0.95), repeats, sync),
            "vtrace_triton": median_ms(lambda: advantage.vtrace_triton(*vt, 0.99, 0.95), repeats, sync, warmup=2),
            "vtrace_torch_loop": median_ms(lambda: advantage.vtrace_torch(*vt, 0.99, 0.95), repeats, sync),
        }


def bench_advantage(rows: int = 8192, horizon: int = 64, repeats: int = 21, threads: int = 1) -> dict[str, float]:
    """Median milliseconds of one GAE / V-trace call over ``rows`` trajectories of ``horizon`` steps, float32 on
    CPU: the C kernel against the pure-torch reference (``gae_torch``/``vtrace_torch``).

    torch runs on ``threads`` threads meanwhile (1, as training does by default; V-trace's C path also calls
    torch for the exp of the log-ratios). With 2 threads on the 2-core machine, one busy neighbour process made
    torch's ops 10-15× slower, which is noise, not the kernels.

    The ``*_c`` and ``*_torch`` entries take row-major [rows, horizon] inputs (PufferLib's layout); the
    ``*_c_time_major`` entries take the ``.T`` of [horizon, rows] buffers, as training passes its rollout.
    Inputs are random with ~2 % episode ends, half of them truncations, and ratios about e^±0.3.
    """
    import torch

    from thrust_cli.learn.advantage import gae, gae_torch, vtrace, vtrace_torch

    gen = torch.Generator().manual_seed(0)
    shape = (rows, horizon)
    rewards, values, next_values = (torch.randn(shape, generator=gen) for _ in range(3))
    dones = torch.rand(shape, generator=gen) < 0.02
    terminals = dones & (torch.rand(shape, generator=gen) < 0.5)
    behavior = -torch.rand(shape, generator=gen)
    target = behavior + 0.3 * torch.randn(shape, generator=gen)

    r, v, nv, term, done, mu, pi = rewards, values, next_values, terminals, dones, behavior, target
    # the same values as views of [horizon, rows] buffers
    tr, tv, tnv, tterm, tdone, tmu, tpi = (x.T.contiguous().T for x in (r, v, nv, term, done, mu, pi))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return {
            "gae_c": median_ms(lambda: gae(r, v, nv, term, done, 0.99, 0.95), repeats),
            "gae_torch": median_ms(lambda: gae_torch(r, v, nv, term, done, 0.99, 0.95), repeats),
            "vtrace_c": median_ms(lambda: vtrace(r, v, nv, term, done, mu, pi, 0.99, 0.95), repeats),
            "vtrace_torch": median_ms(lambda: vtrace_torch(r, v, nv, term, done, mu, pi, 0.99, 0.95), repeats),
            "gae_c_time_major": median_ms(lambda: gae(tr, tv, tnv, tterm, tdone, 0.99, 0.95), repeats),
            "vtrace_c_time_major": median_ms(lambda: vtrace(tr, tv, tnv, tterm, tdone, tmu, tpi, 0.99, 0.95), repeats),
        }
    finally:
        torch.set_num_threads(previous)


def run_bench(
    cfg: DictConfig,
    seconds: float = 1.0,
    train_steps: int = 200_000,
    echo: Callable[[str], Any] | None = print,
    reference: bool = True,
    vec_envs: int = 8192,
    advantage: bool = True,
) -> dict[str, Any]:
    """Measure env steps/s for several ``num_envs``, the plain-C reference loops where the env has one, the
    advantage kernels (:func:`bench_advantage`), and the training SPS of the composed config."""
    run = validate(cfg)
    device = "cpu"
    if run.device != "cpu":  # resolved first: device=cuda without CUDA fails before minutes of env benchmarks
        from thrust_cli.commands.train import resolve_device

        device = str(resolve_device(run.device))
    result: dict[str, Any] = {"env": run.env.name, "env_steps_per_s": {}}
    sizes = {"gym": (1, 8, 64), "snake": (1, 4, 16)}.get(run.env.name, ENV_SIZES)  # snake: boards of snakes
    for num_envs in sizes:
        sps = env_steps_per_second(run.env, num_envs, seconds)
        result["env_steps_per_s"][str(num_envs)] = sps
        if echo:
            echo(f"env {run.env.name:10s} num_envs={num_envs:6d}  {sps / 1e6:8.2f} M steps/s")
    if reference:
        figures, skipped = c_reference(run.env, repeats_for(seconds, 15))
        result["c_reference_steps_per_s"] = figures
        if skipped:
            result["c_reference_skipped"] = skipped
        if echo:
            for name, sps in figures.items():
                echo(f"C reference {name:36s} {sps / 1e6:8.2f} M steps/s (no Python)")
            if skipped:
                echo(f"C reference skipped: {skipped}")
    if reference and run.env.name in PEERS:
        peers, skipped = PEERS[run.env.name](seconds, 5)
        result["peer_steps_per_s"] = peers
        ours = max(v for k, v in result["env_steps_per_s"].items() if int(k) >= 1024)
        if echo:
            for name, sps in peers.items():
                echo(f"peer {name:52s} {sps / 1e3:8.1f} k steps/s  (Thrust, 1,024+ envs: {ours / sps:,.0f}x)")
            if skipped:
                echo(f"peer skipped: {skipped}")
        if skipped:
            result["peer_skipped"] = skipped
    if advantage:
        rows, horizon = ADVANTAGE_SIZE
        ms = result["advantage_ms"] = bench_advantage(rows, horizon, repeats_for(seconds, 21))
        if echo:
            echo(f"advantage  {rows} rows x {horizon} steps, float32, median ms of one call, one thread")
            for name in ("gae", "vtrace"):
                echo(
                    f"advantage  {name:6s}  C {ms[name + '_c']:6.2f}  torch {ms[name + '_torch']:7.2f}  "
                    f"C on a rollout's .T {ms[name + '_c_time_major']:6.2f}"
                )
        # on a GPU (cuda, or auto on a machine with one): the kernels training runs there
        on_device = bench_device_advantage(rows, horizon, repeats_for(seconds, 21), device) if device != "cpu" else None
        if on_device is not None:
            result["advantage_ms_device"] = {"device": device, **on_device}
            if echo:
                for name in ("gae", "vtrace"):
                    fused, loop = on_device[name + "_triton"], on_device[name + "_torch_loop"]
                    echo(
                        f"advantage  {name:6s}  on {device}: Triton {fused:6.3f}  torch loop over T {loop:7.3f}  "
                        f"({loop / fused:,.1f}x)"
                    )
    if vec_envs > 0:
        from thrust_cli.vector.envs import agents_per_env

        num_envs = max(2, vec_envs // agents_per_env(run.env))  # vec_envs counts agents
        result["vectorizers_steps_per_s"] = compare_vectorizers(cfg, num_envs, seconds, echo)
    if train_steps > 0:
        from thrust_cli.commands.train import train

        train_cfg: Any = OmegaConf.merge(
            cfg, {"train": {"total_timesteps": train_steps, "progress": "none", "target_return": None}}
        )
        with tempfile.TemporaryDirectory() as tmp:
            summary = train(train_cfg, tmp)
        result["train_sps"] = summary["sps"]
        result["train_steps"] = summary["global_step"]
        result["train_status"] = summary["status"]  # "interrupted" after Ctrl-C: fewer steps than asked
        if "compile_s" in summary:  # train.compile: the compiling calls' seconds, and the SPS without them
            result["compile_s"] = summary["compile_s"]
            rest = max(summary["global_step"] / summary["sps"] - summary["compile_s"], 1e-9)
            result["train_sps_after_compile"] = summary["global_step"] / rest
        if echo:
            cut = " (interrupted)" if summary["status"] == "interrupted" else ""
            echo(f"training   {summary['global_step']:,} steps  {summary['sps']:,.0f} SPS (incl. updates){cut}")
            if "compile_s" in result:
                echo(
                    f"training   compiling took {result['compile_s']:.1f} s; without it "
                    f"{result['train_sps_after_compile']:,.0f} SPS"
                )
    return result
