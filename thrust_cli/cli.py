"""The ``thrust`` command line: Typer in front of Hydra's Compose API.

Only Typer is imported at start-up; torch, Hydra and the envs load inside the command that needs them, so
``thrust --help`` stays fast. Every user error ends in one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer
from typer import Abort

# click's usage-error base class, wherever this typer keeps it (newer typers vendor click as typer._click)
ClickException: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

app = typer.Typer(
    name="thrust",
    help="Thrust: fast reinforcement learning. Configs compose Hydra groups: env, policy, algo, vec, logger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": ["-h", "--help"]}
DEBUG_ENV = "THRUST_DEBUG"


def _classic_help() -> None:
    """Help text as click users read it: flags without a value placeholder, arguments as ``RUN`` / ``[RUN]``.

    Typer 0.29 prints every flag with a type (``--json <bool>``, which reads as if it took a value) and a
    required argument as ``{run}``. Both come from two methods of typer.core; they are replaced only where this
    Typer has them, so another Typer version keeps its own help.
    """
    from typer import core

    option_type = getattr(core.TyperOption, "display_type_rich", None)
    if option_type is not None:

        def display_type_rich(self: Any, ctx: Any) -> str | None:
            return None if getattr(self, "is_flag", False) and self.metavar is None else option_type(self, ctx)

        core.TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
    if hasattr(core.TyperArgument, "_usage_display_name"):

        def usage_name(self: Any) -> str:
            name = str(self.display_name_raw).upper()
            name = name if self.required else f"[{name}]"
            return name + ("..." if self.nargs != 1 else "")

        core.TyperArgument._usage_display_name = usage_name  # type: ignore[method-assign]


_classic_help()


def _version(value: bool) -> None:
    if value:
        from thrust_cli import __version__

        typer.echo(f"thrust {__version__}")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False, "--debug", help=f"Show the full traceback of an unexpected error ({DEBUG_ENV}=1)."
    ),
) -> None:
    """Thrust: fast reinforcement learning. Configs compose Hydra groups: env, policy, algo, vec, logger."""
    if debug:
        os.environ[DEBUG_ENV] = "1"


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` (one line) to stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _compose(overrides: list[str], command: str = "train") -> Any:
    from thrust_cli.run.config import ConfigError, compose_config

    multirun = [a for a in overrides if a in ("-m", "--multirun")]
    if multirun:
        fail(f"`thrust {command}` runs one job; use `thrust sweep -m key=a,b` for multirun")
    options = [a for a in overrides if a.startswith("-")]
    if options:
        fail(f"unknown option '{options[0]}'; see `thrust {command} --help`")
    try:
        return compose_config(overrides)
    except ConfigError as exc:
        fail(str(exc))


def make_run_dir(cfg: Any, overrides: list[str]) -> Path:
    """Create the run directory named by ``hydra.run.dir`` (made unique) with Hydra's ``.hydra/`` files."""
    from omegaconf import OmegaConf

    from thrust_cli.run.config import run_part

    base = Path(str(cfg.hydra.run.dir))
    run_dir, n = base, 1
    while run_dir.exists():
        run_dir = base.with_name(f"{base.name}_{n}")
        n += 1
    hydra_dir = run_dir / ".hydra"
    hydra_dir.mkdir(parents=True)
    (hydra_dir / "config.yaml").write_text(OmegaConf.to_yaml(run_part(cfg)))
    (hydra_dir / "hydra.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create({"hydra": cfg.hydra})))
    (hydra_dir / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    return run_dir.resolve()


def _resolved(node: Any) -> Any:
    """``node`` with every interpolation resolved that can be; the rest stay as written.

    Outside a multirun Hydra leaves ``hydra.job.num`` (and what interpolates it, ``hydra.sweep.subdir``)
    unset, so resolving the whole hydra node at once fails; ``--cfg hydra --resolve`` shows those as ``${...}``.
    """
    from omegaconf import DictConfig, ListConfig, OmegaConf

    def walk(cfg: Any) -> Any:
        keys = range(len(cfg)) if isinstance(cfg, ListConfig) else list(cfg.keys())
        out: Any = [] if isinstance(cfg, ListConfig) else {}
        for key in keys:
            raw = cfg._get_node(key)
            try:
                value = cfg[key]
            except Exception:
                value = raw._value() if hasattr(raw, "_value") else str(raw)
            if isinstance(value, (DictConfig, ListConfig)):
                value = walk(value)
            if isinstance(out, list):
                out.append(value)
            else:
                out[key] = value
        return out

    return OmegaConf.create(walk(node))


@app.command(context_settings=EXTRA_ARGS)
def train(
    ctx: typer.Context,
    cfg: str = typer.Option(None, "--cfg", "-c", help="Print the composed config (job, hydra or all) and exit."),
    resolve: bool = typer.Option(False, "--resolve", help="Resolve interpolations when printing with --cfg."),
) -> None:
    """Train a policy. Extra arguments are Hydra overrides, e.g. `env=gym env.id=Acrobot-v1 lr=1e-3`.

    Prints progress to stderr; the last line on stdout is the run directory.
    """
    overrides = list(ctx.args)
    composed = _compose(overrides)
    if cfg is not None:
        from omegaconf import OmegaConf

        from thrust_cli.run.config import run_part

        if cfg not in ("job", "hydra", "all"):
            fail(f"--cfg={cfg} is invalid; allowed: job, hydra, all")
        node = {"job": run_part(composed), "hydra": {"hydra": composed.hydra}, "all": composed}[cfg]
        node = OmegaConf.create(node) if isinstance(node, dict) else node
        typer.echo(OmegaConf.to_yaml(_resolved(node) if resolve else node))
        return
    from thrust_cli.learn.distributed import elastic_env
    from thrust_cli.run.config import ConfigError

    if elastic_env() is not None:  # a rank of a torchrun job (or of `thrust train dist.nproc=N`)
        _train_rank(composed, overrides)
        return
    if composed.dist.nproc > 1:
        _launch_ranks(composed, overrides)
        return
    if composed.resume is not None:
        from thrust_cli.run.config import resume_config

        run_dir = Path(composed.resume).resolve()
        try:
            composed = resume_config(run_dir, [o for o in overrides if not o.startswith("resume=")])
        except ConfigError as exc:
            fail(str(exc))
        from thrust_cli.commands.train import _has_checkpoint

        if not _has_checkpoint(run_dir):  # stopped before its first checkpoint: nothing to go on from
            typer.echo(f"note: '{run_dir}' has no checkpoint yet: it trains from step 0", err=True)
    else:
        from thrust_cli.commands.train import TrainingError, preflight

        try:  # a run that cannot start (no CUDA, unknown gym id) fails before it has a directory
            preflight(composed)
        except (ConfigError, TrainingError, ValueError) as exc:
            fail(str(exc), code=1)
        run_dir = make_run_dir(composed, overrides)

    from thrust_cli.commands.train import TrainingError
    from thrust_cli.commands.train import train as train_fn

    try:
        summary = train_fn(composed, run_dir)
    except (ConfigError, TrainingError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        typer.echo(str(run_dir))
        raise typer.Exit(1) from None
    solved = f", solved at step {summary['solved_at_step']:,}" if summary["solved_at_step"] else ""
    ret = summary["mean_return_last_100"]
    typer.echo(
        f"{summary['status']}: {summary['global_step']:,} steps in {summary['wall_time_s']:.1f}s "
        f"({summary['sps']:,.0f} SPS), mean return {ret if ret is None else round(ret, 2)}{solved}",
        err=True,
    )
    typer.echo(str(run_dir))
    if summary["status"] == "interrupted":
        raise typer.Exit(130)


RUN_DIR_ENV = "THRUST_RUN_DIR"  # set by `thrust train dist.nproc=N` for its ranks: the run directory it made


def _report(summary: dict[str, Any], run_dir: Path) -> None:
    """The last lines of a finished `thrust train`: status on stderr, the run directory on stdout."""
    solved = f", solved at step {summary['solved_at_step']:,}" if summary.get("solved_at_step") else ""
    ret = summary.get("mean_return_last_100")
    typer.echo(
        f"{summary['status']}: {summary['global_step']:,} steps in {summary['wall_time_s']:.1f}s "
        f"({summary['sps']:,.0f} SPS), mean return {ret if ret is None else round(ret, 2)}{solved}",
        err=True,
    )
    typer.echo(str(run_dir))


def _run_dir_pointer(cfg: Any, run_id: str) -> Path:
    """``<root>/.torchelastic/<run id>``: the file naming a torchrun job's run directory (see _shared_run_dir)."""
    from omegaconf import OmegaConf

    raw = str(OmegaConf.to_container(cfg.hydra.run, resolve=False)["dir"])  # type: ignore[index,call-overload]
    parts = Path(raw).parts
    cut = next((i for i, p in enumerate(parts) if "${" in p), None)
    root = Path(raw).parent if cut is None else Path(*parts[:cut]) if cut > 0 else Path(".")
    return root / ".torchelastic" / run_id


def _shared_run_dir(cfg: Any, overrides: list[str], run_id: str, restart_count: int) -> Path:
    """Rank 0 of a torchrun job: the job's run directory, the same after every elastic restart.

    The first attempt makes it (``hydra.run.dir``, made unique) and records it in ``<root>/.torchelastic/<run id>``,
    where ``<root>`` is the part of ``hydra.run.dir`` before its first interpolation (``outputs/`` by default; the
    parent of a literal ``hydra.run.dir``), so that a restarted attempt — which has the same
    ``TORCHELASTIC_RUN_ID`` (torchrun's ``--rdzv-id``) — finds it again and resumes from its latest checkpoint.
    """
    pointer = _run_dir_pointer(cfg, run_id)
    if restart_count > 0 and pointer.is_file():
        previous = Path(pointer.read_text().strip())
        if previous.is_dir():
            return previous
    run_dir = make_run_dir(cfg, overrides)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.write_text(str(run_dir) + "\n")
    return run_dir


def _train_rank(composed: Any, overrides: list[str]) -> None:
    """One rank of a data-parallel job (docs/distributed.md): join the group, agree on the run directory, train.

    Rank 0 alone prints the progress and the result; every rank prints its own error line.
    """
    from thrust_cli.commands.train import TrainingError, preflight
    from thrust_cli.commands.train import train as train_fn
    from thrust_cli.learn.distributed import elastic_env, init_data_parallel
    from thrust_cli.run.config import ConfigError, resume_config

    elastic = elastic_env()
    assert elastic is not None
    launched = os.environ.get(RUN_DIR_ENV)
    resume_dir = Path(composed.resume).resolve() if composed.resume is not None else None
    try:
        if resume_dir is not None:
            composed = resume_config(resume_dir, [o for o in overrides if not o.startswith("resume=")])
        else:
            preflight(composed)
    except (ConfigError, TrainingError, ValueError) as exc:
        fail(f"rank {elastic.rank}: {exc}", code=1)
    try:
        dp = init_data_parallel(composed.dist.backend, composed.device, composed.dist.timeout_s)
    except (RuntimeError, ValueError) as exc:
        fail(f"rank {elastic.rank}: cannot join the process group: {str(exc).splitlines()[0]}", code=1)
    try:
        if resume_dir is not None or launched:
            run_dir = resume_dir or Path(str(launched))
        else:
            mine = _shared_run_dir(composed, overrides, elastic.run_id, elastic.restart_count) if dp.is_main else None
            run_dir = Path(dp.broadcast_object(str(mine) if mine is not None else None))
        try:
            summary = train_fn(composed, run_dir, dp)
        except (ConfigError, TrainingError, ValueError, RuntimeError) as exc:
            # RuntimeError: a collective outside the training loop (the start, the resume broadcast) failed
            first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            first = first.split(". This is typically")[0]  # gloo's advice paragraph
            typer.echo(f"error: {first}" if dp.is_main else f"error: rank {dp.rank}: {first}", err=True)
            if dp.is_main and not launched:
                typer.echo(str(run_dir))
            raise typer.Exit(1) from None
    finally:
        dp.close()
    if dp.is_main and not launched:
        if resume_dir is None and summary["status"] in ("completed", "solved"):
            _run_dir_pointer(composed, elastic.run_id).unlink(missing_ok=True)  # no restart will need it
        _report(summary, run_dir)
    if summary["status"] == "interrupted":
        raise typer.Exit(130)


def _launch_ranks(composed: Any, overrides: list[str]) -> None:
    """`thrust train dist.nproc=N`: the job torchrun would start, through torch's elastic launcher API.

    This process makes the run directory, starts N ranks of ``python -m thrust_cli train <overrides>`` on this
    machine (``dist.max_restarts`` elastic restarts) and waits; when a rank fails for good it writes
    ``summary.json`` (status failed) unless rank 0 did, and ends with one line naming the failed rank.
    """
    import logging

    from thrust_cli.commands.train import TrainingError, preflight
    from thrust_cli.learn.distributed import launch
    from thrust_cli.run.config import ConfigError

    if composed.resume is not None:
        run_dir = Path(composed.resume).resolve()
    else:
        try:
            preflight(composed)
        except (ConfigError, TrainingError, ValueError) as exc:
            fail(str(exc), code=1)
        run_dir = make_run_dir(composed, overrides)
    quiet = logging.getLogger("torch.distributed.elastic")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the agent's own lines; the failure is reported below in one line
    try:
        result = launch(
            composed.dist.nproc, ["train", *overrides], composed.dist.max_restarts, {RUN_DIR_ENV: str(run_dir)}
        )
    finally:
        quiet.setLevel(level)
    path = run_dir / "summary.json"
    try:
        summary: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        summary = {}
    if result.interrupted:
        typer.echo(f"interrupted: the ranks were stopped; run saved in {run_dir}", err=True)
        typer.echo(str(run_dir))
        raise typer.Exit(130)
    if result.failure is not None:
        if summary.get("status") != "failed":
            summary = {"status": "failed", "error": result.failure, "failed_rank": result.rank}
            path.write_text(json.dumps(summary, indent=2) + "\n")
        cause = summary.get("error")  # rank 0's reason, unless a rank was killed (then the others only lost it)
        detail = f" ({cause})" if cause and cause != result.failure and "killed by" not in result.failure else ""
        typer.echo(f"error: {result.failure}{detail}; run saved in {run_dir}", err=True)
        typer.echo(str(run_dir))
        raise typer.Exit(1)
    _report(summary, run_dir)
    if summary.get("status") == "interrupted":
        raise typer.Exit(130)


@app.command(context_settings=EXTRA_ARGS)
def sweep(
    ctx: typer.Context,
    multirun: bool = typer.Option(True, "--multirun", "-m", help="Accepted for Hydra habit; a sweep always is one."),
    objective: str = typer.Option(
        None, help="summary.json key reported and ranked (default mean_return_last_100; with --hpo the file's)."
    ),
    minimize: bool | None = typer.Option(
        None, "--minimize/--maximize", help="Rank (with --hpo: optimize) the objective low or high first."
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Jobs run in parallel, each its own process."),
    sweep_dir: Path = typer.Option(None, "--dir", help="Sweep directory (default multirun/<date>/<time>)."),
    hpo: str = typer.Option(None, "--hpo", help="Bayesian search with Optuna: a conf/hpo/ preset or a .yaml file."),
    trials: int = typer.Option(None, "--trials", min=1, help="[--hpo] Trials the study holds in all (resumes count)."),
    storage: str = typer.Option(None, "--storage", help="[--hpo] Optuna storage (default sqlite:///<dir>/study.db)."),
    study_name: str = typer.Option(None, "--study-name", help="[--hpo] Study name (default the hpo preset's name)."),
) -> None:
    """Run a sweep: every combination of `key=a,b,...` overrides is a full `thrust train` run.

    Example: `thrust sweep -m lr=1e-3,3e-4 env.num_envs=16,32`. Writes sweep_summary.csv into the sweep
    directory (the last line printed); failed jobs are recorded and the sweep goes on (exit 1 if all fail).
    Ctrl-C stops the running jobs (each saves), starts no more and still writes the summary (exit 130).
    With `--hpo cartpole` it is a Bayesian search (Optuna) over the space in conf/hpo/cartpole.yaml instead; the
    same --storage and --study-name resume a study, and best.yaml holds the best trial's overrides.
    """
    from thrust_cli.commands.sweep import print_table, run_sweep
    from thrust_cli.run.config import ConfigError

    overrides = [a for a in ctx.args if a not in ("-m", "--multirun")]
    options = [a for a in overrides if a.startswith("-")]
    if options:
        fail(f"unknown option '{options[0]}'; see `thrust sweep --help`")
    if hpo is not None:
        _hpo_sweep(hpo, overrides, objective, minimize, jobs, sweep_dir, trials, storage, study_name)
        return
    given = [
        name for name, value in (("--trials", trials), ("--storage", storage), ("--study-name", study_name)) if value
    ]
    if given:
        fail(f"{given[0]} needs --hpo (a Bayesian search)")
    if not overrides:
        fail("nothing to sweep; give overrides such as lr=1e-3,3e-4")
    objective = objective or "mean_return_last_100"
    try:
        result = run_sweep(overrides, sweep_dir, objective, jobs, echo=lambda line: typer.echo(line, err=True))
    except ConfigError as exc:
        fail(str(exc))
    print_table(result.rows, objective, maximize=not minimize)
    if result.interrupted:
        typer.echo("interrupted: the running jobs were stopped; jobs not started are listed as skipped", err=True)
    typer.echo(str(result.sweep_dir))
    if result.interrupted:
        raise typer.Exit(130)
    if all(row["status"] == "failed" for row in result.rows):
        fail(f"all {len(result.rows)} jobs failed; see sweep_summary.csv for the errors", code=1)


def _hpo_sweep(
    hpo: str,
    overrides: list[str],
    objective: str | None,
    minimize: bool | None,
    jobs: int,
    sweep_dir: Path | None,
    trials: int | None,
    storage: str | None,
    study_name: str | None,
) -> None:
    """`thrust sweep --hpo`: run or resume an Optuna study, print its table and best trial (thrust_cli.commands.hpo)."""
    import dataclasses
    import shlex

    from thrust_cli.commands.hpo import import_optuna, load_hpo, run_hpo
    from thrust_cli.commands.sweep import print_table
    from thrust_cli.run.config import ConfigError

    try:
        import_optuna()
        spec = load_hpo(hpo)
        if objective is not None:
            spec = dataclasses.replace(spec, objective=objective)
        if minimize is not None:
            spec = dataclasses.replace(spec, direction="minimize" if minimize else "maximize")
        result = run_hpo(
            spec, overrides, sweep_dir, trials, storage, study_name, jobs, echo=lambda line: typer.echo(line, err=True)
        )
    except (ConfigError, ImportError) as exc:
        fail(str(exc))
    print_table(result.rows, spec.objective, spec.direction == "maximize", "trial", "params")
    failed = sum(row["status"] == "failed" for row in result.rows)
    stopped = sum(row["status"] in ("interrupted", "skipped") for row in result.rows)
    also = f", {stopped} stopped by Ctrl-C" if stopped else ""
    typer.echo(
        f"study '{result.study_name}': {len(result.rows)} trials ({failed} failed{also}) in {result.storage}", err=True
    )
    if result.best_trial is not None:
        typer.echo(f"best trial {result.best_trial}: {spec.objective} = {result.best_value:.6g}", err=True)
        typer.echo(f"  thrust train {shlex.join(result.best_overrides)}", err=True)
    resume = ["thrust", "sweep", "--hpo", hpo, "--storage", result.storage, "--study-name", result.study_name]
    typer.echo(f"more trials: {shlex.join(resume)} --trials N", err=True)
    typer.echo(str(result.sweep_dir))
    if result.interrupted:
        raise typer.Exit(130)
    if result.best_trial is None:
        fail("no trial completed; see sweep_summary.csv for the errors", code=1)


@app.command("eval", context_settings=EXTRA_ARGS)
def eval_(
    ctx: typer.Context,
    run: Path | None = typer.Argument(
        None, help="A run directory (its latest checkpoint) or a checkpoint file (default: the latest run in outputs/)."
    ),
    episodes: int = typer.Option(100, "--episodes", "-n", min=1, help="Episodes to run."),
    seed: int = typer.Option(
        12345, "--seed", min=0, max=2**63 - 1, help="Seed of the evaluation envs (fixed by default)."
    ),
    stochastic: bool = typer.Option(False, "--stochastic", help="Sample actions instead of taking the argmax."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    gif: Path = typer.Option(None, "--gif", help="Also write an animation of env 0 (envs that render)."),
) -> None:
    """Evaluate a trained policy: mean ± std return over N episodes. Extra arguments override the env config."""
    from thrust_cli.commands.evaluate import evaluate
    from thrust_cli.run.checkpoint import latest_run

    overrides = list(ctx.args)
    if run is not None and "=" in str(run) and not run.exists():  # `thrust eval env.max_steps=1000`: no run named
        overrides, run = [str(run), *overrides], None
    try:
        if run is None:
            run = latest_run()
            typer.echo(f"using the latest run: {run}", err=True)
        result = evaluate(run, episodes=episodes, seed=seed, deterministic=not stochastic, overrides=overrides, gif=gif)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(
            f"mean return {result['mean_return']:.2f} ± {result['std_return']:.2f} over {result['episodes']} "
            f"episodes (mean length {result['mean_length']:.1f})"
        )


@app.command()
def export(
    run: Path | None = typer.Argument(
        None, help="A run directory (its latest checkpoint) or a checkpoint file (default: the latest run in outputs/)."
    ),
    onnx: bool = typer.Option(False, "--onnx", help="One self-contained .onnx file, checked with onnxruntime."),
    safetensors: bool = typer.Option(False, "--safetensors", help="Weights plus the metadata to rebuild the policy."),
    output: str | None = typer.Option(
        None,
        "--output",
        "-o",
        metavar="PATH",
        help="A file, or a directory (existing, or ending in '/') to write policy.<ext> in; with both formats "
        "FILE.onnx and FILE.safetensors (default: <run>/export/policy.<ext>).",
    ),
) -> None:
    """Export a trained policy for runtimes without Thrust (docs/export.md)."""
    if not (onnx or safetensors):
        fail("choose a format: --onnx and/or --safetensors")
    from thrust_cli.commands.export import export_onnx, export_safetensors, format_output
    from thrust_cli.run.checkpoint import latest_run

    try:
        if run is None:
            run = latest_run()
            typer.echo(f"using the latest run: {run}", err=True)
        if onnx:
            typer.echo(export_onnx(run, output=format_output(output, ".onnx", safetensors)).summary())
        if safetensors:
            typer.echo(f"wrote {export_safetensors(run, output=format_output(output, '.safetensors', onnx))}")
    except (FileNotFoundError, ValueError, ImportError) as exc:
        fail(str(exc), code=1)


@app.command(context_settings=EXTRA_ARGS)
def bench(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    seconds: float = typer.Option(1.0, "--seconds", min=0.05, help="Seconds per env measurement (median of 5)."),
    train_steps: int = typer.Option(200_000, "--train-steps", min=0, help="Env steps of the training run (0: skip)."),
    reference: bool = typer.Option(True, help="Also compile and time the env's plain C reference loop (gcc)."),
    vec_envs: int = typer.Option(8192, "--vec-envs", min=0, help="Envs for the vectorizer comparison (0: skip)."),
) -> None:
    """Benchmark env stepping (one process, random actions, several num_envs) and training SPS."""
    from thrust_cli.commands.bench import run_bench
    from thrust_cli.learn.ppo import TrainingError

    overrides = list(ctx.args)
    composed = _compose(overrides, "bench")
    try:
        result = run_bench(
            composed,
            seconds=seconds,
            train_steps=train_steps,
            echo=None if as_json else typer.echo,
            reference=reference,
            vec_envs=vec_envs,
        )
    except ValueError as exc:
        fail(str(exc))
    except TrainingError as exc:  # device=cuda without CUDA, an env that cannot be made
        fail(str(exc), code=1)
    if as_json:
        typer.echo(json.dumps(result))
    if result.get("train_status") == "interrupted":  # Ctrl-C during the training run: its figure is partial
        typer.echo("interrupted", err=True)
        raise typer.Exit(130)


@app.command()
def plot(
    runs: list[Path] = typer.Argument(..., help="Run directories (each with a metrics.jsonl)."),
    out: Path = typer.Option(Path("curves.png"), "--out", "-o", help="The PNG to write."),
    metrics: list[str] = typer.Option(
        None,
        "--metrics",
        "-m",
        help="metrics.jsonl keys to draw, repeated or comma-separated "
        "(default: episode_return, sps, policy_loss, value_loss, entropy).",
    ),
) -> None:
    """Training curves against global_step as a PNG; several runs are overlaid, with a legend."""
    from thrust_cli.commands.plot import PlotError, plot_runs

    keys = [k.strip() for item in metrics or [] for k in item.split(",") if k.strip()] or None
    try:
        typer.echo(str(plot_runs(runs, out, keys)))
    except PlotError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write '{out}': {exc.strerror or exc}")


demo_app = typer.Typer(
    help="The demo site's policies (thrust serve): `thrust demo build` trains, evaluates and exports them.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(demo_app, name="demo")


@demo_app.command("build")
def demo_build(
    game: str = typer.Option("all", "--game", "-g", help="cartpole, snake, asteroids or all."),
    out: Path = typer.Option(None, "--out", "-o", help="Model store (default: the package's thrust_cli/web/models)."),
    work: Path = typer.Option(Path("outputs/demo"), "--work", help="Where the training runs are written."),
    override: list[str] = typer.Option(
        None, "--override", help="A `thrust train` override added to every demo's (repeatable), e.g. seed=2."
    ),
) -> None:
    """Train, evaluate (greedy, 100 episodes, against a random policy) and export the demo policies.

    About 10 minutes on 2 CPU cores in all (CartPole seconds, Snake ~2 min, Asteroids ~7 min). Writes
    <out>/<game>/policy.safetensors, policy.onnx and model.json (figures and the command).
    """
    from thrust_cli.commands.demo import DEMOS, MODELS_DIR, build_demos, describe

    games = list(DEMOS) if game == "all" else [game]
    try:
        models = build_demos(games, out if out is not None else MODELS_DIR, work, tuple(override or ()))
    except (ValueError, RuntimeError) as exc:
        fail(str(exc), code=2 if isinstance(exc, ValueError) else 1)
    for model in models:
        typer.echo(describe(model))


@app.command()
def serve(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface; there is no login)."
    ),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port (0: any free one)."),
    runs: Path = typer.Option(
        Path("outputs"), "--runs", help="Run directories the dashboard lists (a missing one lists none until created)."
    ),
    db: Path = typer.Option(
        None, "--db", metavar="PATH", help="Analytics SQLite file (default ~/.cache/thrust/analytics.sqlite3)."
    ),
    models: Path = typer.Option(
        None, "--models", metavar="DIR", help="Demo models, DIR/<game>/policy.safetensors (default: the shipped ones)."
    ),
) -> None:
    """Serve the browser demo, the live training dashboard and the HTTP API (docs at /docs).

    Prints the URL once listening; Ctrl-C stops (exit 130). Needs the web extra of thrust-rl (fastapi, uvicorn).
    """
    from thrust_cli.commands.serve import ServeError
    from thrust_cli.commands.serve import serve as serve_fn

    try:
        code = serve_fn(host, port, runs, db, models, echo=typer.echo)
    except ServeError as exc:
        fail(str(exc), code=1)
    if code == 130:
        typer.echo("stopped", err=True)
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point.

    An unexpected exception (a bug, or a fault no command foresaw) ends in ONE line naming the command and the
    cause; ``THRUST_DEBUG=1`` or ``thrust --debug <command>`` shows the traceback instead. Ends with ``os._exit``
    after flushing: torch's interpreter teardown costs ~0.4 s here, an eighth of the whole time to solve
    CartPole. Everything a command writes is closed (and checkpoints fsynced) before it returns, so nothing
    relies on atexit handlers.
    """
    code = 0
    try:
        # not standalone: a usage error (a bad option value, an unknown option or command, a missing argument)
        # comes here as an exception, to be printed as one line rather than Rich's boxed panel
        result = app(standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except ClickException as exc:
        print(f"error: {usage_error_line(exc)}", file=sys.stderr)
        code = getattr(exc, "exit_code", 2)
    except Abort:
        print("interrupted", file=sys.stderr)
        code = 130
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            code = 1
        else:
            code = exc.code or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    except Exception as exc:
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            import traceback

            traceback.print_exc()
        else:
            print(f"error: {unexpected_error_line(exc)}", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def usage_error_line(exc: Any) -> str:
    """One line for a command-line usage error: click's message, and where the help for it is."""
    message = " ".join(line.strip() for line in exc.format_message().splitlines() if line.strip()).rstrip(".")
    names, ctx = [], getattr(exc, "ctx", None)
    while ctx is not None and ctx.parent is not None:  # the subcommands, not the program's own name
        names.append(ctx.info_name)
        ctx = ctx.parent
    return f"{message}; see `{' '.join(['thrust', *reversed(names)])} --help`"


def unexpected_error_line(exc: BaseException, argv: list[str] | None = None) -> str:
    """``thrust <command> failed: <Type>: <first line of the message> (THRUST_DEBUG=1 shows the traceback)``."""
    args = sys.argv[1:] if argv is None else argv
    command = next((a for a in args if not a.startswith("-")), "")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    cause = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return f"thrust {command} failed: {cause} ({DEBUG_ENV}=1 shows the traceback)".replace("thrust  ", "thrust ")


if __name__ == "__main__":
    main()
