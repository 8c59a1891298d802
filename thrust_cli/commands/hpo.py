"""``thrust sweep --hpo NAME``: Bayesian hyperparameter search with Optuna.

A search is described by ``conf/hpo/<name>.yaml`` (or any yaml file), loaded here and never composed into the run
config: the objective (a ``summary.json`` key) and its direction, the number of trials, the sampler and its seed,
overrides every trial gets (``fixed``), the search space (``params``: one ``float``, ``int`` or ``categorical``
distribution per override key) and trials to run first (``enqueue``).

Each trial is one ``thrust train`` process run by :func:`thrust_cli.commands.sweep.run_job`, so a crash, a NaN or a bad
value is a failed trial, told to Optuna as ``FAIL``, and the study goes on. Trials go through Optuna's ask/tell
interface (``jobs`` threads, each waiting on its own process); the study lives in an RDB storage, SQLite by
default (``<sweep dir>/study.db``), so the same ``--storage`` and ``--study-name`` resume it. A Ctrl-C stops the
running trials as in a grid sweep: each ends ``interrupted``, a ``FAIL`` for Optuna (a partial run is no result).

Why Optuna directly and not hydra-optuna-sweeper: the plugin pins optuna < 3 and SQLAlchemy 1.4, runs trials in
the sweeper's own process and aborts the sweep on the first failed trial unless ``max_failure_rate`` is raised.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shlex
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from thrust_cli.commands.sweep import SUMMARY_FIELDS, Jobs, expand, make_sweep_dir, run_job, write_summary
from thrust_cli.run.config import (
    ConfigError,
    _check_node,
    compose_config,
    conf_dir,
    one_of,
    optional_positive,
    positive,
)

if TYPE_CHECKING:
    import optuna

HPO_FIELDS = ("trial", *SUMMARY_FIELDS)
MISSING_OPTUNA = "Bayesian search needs optuna: pip install 'thrust-rl[hpo]'"
_KEY = re.compile(r"\+?[A-Za-z_][\w.\-/@]*")
_RESERVED = ("true", "false", "null", "nan", "inf")  # words Hydra reads as something other than a string


# --- the hpo file ---------------------------------------------------------------------------------------------
@dataclass
class HpoFile:
    """Schema of an hpo file (``conf/hpo/<name>.yaml``), as written; :func:`parse_hpo` checks it.

    Attributes:
        objective: the ``summary.json`` key a trial is scored by.
        direction: ``maximize`` or ``minimize`` the objective.
        n_trials: finished trials the study should hold in all, earlier sessions' included (> 0).
        sampler: ``tpe`` (Optuna's TPESampler) or ``random``.
        seed: the sampler's seed, or None for an unseeded one; on resume it moves on by the number of
            finished trials.
        fixed: Hydra overrides every trial gets, e.g. ``["env=cartpole"]``.
        params: override key -> distribution mapping (``type`` float, int or categorical; see `FloatParam`,
            `IntParam`, `CategoricalParam`).
        enqueue: mappings of params to values, run as the first trials.
    """

    objective: str = "mean_return_last_100"
    direction: str = one_of(("maximize", "minimize"), "maximize")
    n_trials: int = positive(16)
    sampler: str = one_of(("tpe", "random"), "tpe")
    seed: int | None = None
    fixed: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    enqueue: list[Any] = field(default_factory=list)


@dataclass
class FloatParam:
    """A ``type: float`` distribution (Optuna's ``suggest_float``); ``low`` and ``high`` must be given.

    Attributes:
        type: always ``float``.
        low: lower bound, inclusive.
        high: upper bound, inclusive (>= low).
        log: sample on a log scale (needs low > 0; no step).
        step: discretization step (> 0), or None for a continuous range.
    """

    type: str = "float"
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = optional_positive(None)


@dataclass
class IntParam:
    """A ``type: int`` distribution (Optuna's ``suggest_int``); ``low`` and ``high`` must be given.

    Attributes:
        type: always ``int``.
        low: lower bound, inclusive.
        high: upper bound, inclusive (>= low).
        log: sample on a log scale (needs low > 0 and step 1).
        step: spacing of the values (> 0).
    """

    type: str = "int"
    low: int = 0
    high: int = 0
    log: bool = False
    step: int = positive(1)


@dataclass
class CategoricalParam:
    """A ``type: categorical`` distribution (Optuna's ``suggest_categorical``).

    Attributes:
        type: always ``categorical``.
        choices: non-empty list of numbers, strings, booleans or null.
    """

    type: str = "categorical"
    choices: list[Any] = field(default_factory=list)


# distribution type -> (schema, keys that must be given)
PARAM_TYPES: dict[str, tuple[type, tuple[str, ...]]] = {
    "float": (FloatParam, ("low", "high")),
    "int": (IntParam, ("low", "high")),
    "categorical": (CategoricalParam, ("choices",)),
}


@dataclass
class HpoSpec(HpoFile):
    """A validated search, as plain Python values: ``params`` maps each key to its distribution's dict."""

    name: str = "hpo"  # the default study name: the file's stem


def resolve_hpo(name: str) -> Path:
    """``cartpole`` -> ``conf/hpo/cartpole.yaml``; a path to a yaml file is taken as it is."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"hpo file {name} not found")
        return path
    presets = conf_dir() / "hpo"
    if not (presets / f"{name}.yaml").is_file():
        available = ", ".join(sorted(p.stem for p in presets.glob("*.yaml")))
        raise ConfigError(f"unknown hpo preset '{name}'; available: {available} (or a path to a .yaml file)")
    return presets / f"{name}.yaml"


def load_hpo(name: str) -> HpoSpec:
    """Load and validate an hpo preset or file (see :func:`resolve_hpo`); raise :class:`ConfigError` in one line."""
    path = resolve_hpo(name)
    try:
        node = OmegaConf.load(path)
    except (OSError, OmegaConfBaseException, ValueError) as exc:
        raise ConfigError(f"hpo {path.name}: cannot be read: {str(exc).splitlines()[0]}") from None
    try:
        return parse_hpo(node, path.stem)
    except ConfigError as exc:
        raise ConfigError(f"hpo {path.name}: {exc}") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_param(name: str, node: Any) -> dict[str, Any]:
    where = f"params.{name}"
    if not _KEY.fullmatch(name):
        raise ConfigError(f"'{where}': the name must be a config key such as lr or algo.gae_lambda")
    if not isinstance(node, DictConfig):
        raise ConfigError(f"'{where}' must be a mapping such as {{type: float, low: 1e-4, high: 1e-2, log: true}}")
    kind = node.get("type")
    if kind not in PARAM_TYPES:
        raise ConfigError(f"{where}.type={kind!r} is invalid; allowed: {', '.join(PARAM_TYPES)}")
    schema, required = PARAM_TYPES[kind]
    for key in required:
        if key not in node:
            raise ConfigError(f"{where}.{key} is missing (a {kind} distribution needs {', '.join(required)})")
    param: dict[str, Any] = OmegaConf.to_container(_check_node(node, schema, where))  # type: ignore[assignment]
    if kind == "categorical":
        choices = param["choices"]
        if not choices or not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
            raise ConfigError(f"{where}.choices must be a non-empty list of numbers, strings, booleans or null")
    elif param["low"] > param["high"]:
        raise ConfigError(f"{where}: low={param['low']} is above high={param['high']}")
    elif param["log"] and param["low"] <= 0:
        raise ConfigError(f"{where}: log=true needs low > 0 (low={param['low']})")
    elif param["log"] and param["step"] not in (None, 1):
        raise ConfigError(f"{where}: log=true and a step cannot be combined")
    return param


def _contains(param: dict[str, Any], value: Any) -> bool:
    if param["type"] == "categorical":
        return value in param["choices"]
    if param["type"] == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
        return False
    return _is_number(value) and param["low"] <= value <= param["high"]


def parse_hpo(node: Any, name: str) -> HpoSpec:
    """Validate a loaded hpo file; ``name`` is the default study name."""
    typed = _check_node(node, HpoFile, "")
    params = {str(k): _check_param(str(k), v) for k, v in typed.params.items()}
    if not params:
        raise ConfigError("'params' is empty: give at least one distribution to search")
    fixed = [str(o) for o in typed.fixed]
    searched_and_fixed = sorted(set(params) & {_key(o) for o in fixed})
    if searched_and_fixed:
        raise ConfigError(f"'{searched_and_fixed[0]}' is both in params and in fixed; keep one")
    enqueue: list[dict[str, Any]] = []
    for i, entry in enumerate(typed.enqueue):
        if not isinstance(entry, DictConfig):
            raise ConfigError(f"enqueue[{i}] must be a mapping of params to values, e.g. {{lr: 5.0e-3}}")
        values: dict[str, Any] = {str(k): v for k, v in OmegaConf.to_container(entry).items()}  # type: ignore[union-attr]
        for key, value in values.items():
            if key not in params:
                raise ConfigError(f"enqueue[{i}].{key} is not a searched param; params: {', '.join(params)}")
            if not _contains(params[key], value):
                raise ConfigError(f"enqueue[{i}].{key}={value!r} is outside the distribution of params.{key}")
        enqueue.append(values)
    scalars = {k: typed[k] for k in ("objective", "direction", "n_trials", "sampler", "seed")}
    return HpoSpec(**scalars, fixed=fixed, params=params, enqueue=enqueue, name=name)


# --- overrides ------------------------------------------------------------------------------------------------
def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def format_override(key: str, value: Any) -> str:
    """``key=value`` in Hydra's override grammar (strings quoted only where Hydra would read something else)."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, (int, float)):
        text = repr(value)
    else:
        text = str(value)
        if not re.fullmatch(r"[A-Za-z_][\w\-/.]*", text) or text.lower() in _RESERVED:
            text = "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"{key}={text}"


def shown(values: dict[str, Any]) -> str:
    """A trial's params for people: floats to 4 significant digits (the overrides keep every digit)."""
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else format_override(k, v) for k, v in values.items())


def base_overrides(spec: HpoSpec, extra: Sequence[str]) -> list[str]:
    """The overrides every trial gets: ``fixed`` of the hpo file, then ``extra`` (which replace fixed keys).

    Raises:
        ConfigError: a sweep (``a,b``) among them, a searched key set again, or a config that does not compose.
    """
    merged = {_key(o): o for o in spec.fixed}
    merged.update({_key(o): o for o in extra})
    base = list(merged.values())
    if len(expand(base)) != 1:
        raise ConfigError("with --hpo give single values (key=a,b sweeps are for the grid search); search in params")
    clash = sorted(set(spec.params) & {_key(o) for o in extra})
    if clash:
        raise ConfigError(f"'{clash[0]}' is searched by hpo {spec.name}; drop the override or the param")
    cfg = compose_config(base, with_hydra=False)
    groups = {p.name for p in conf_dir().iterdir() if p.is_dir()}
    for name in spec.params:
        if not name.startswith("+") and name not in groups and OmegaConf.select(cfg, name, default=None) is None:
            raise ConfigError(f"hpo {spec.name}: params.{name}: unknown config key '{name}'; to add one write +{name}")
    return base


# --- the study ------------------------------------------------------------------------------------------------
def import_optuna() -> Any:
    """``optuna``, or an ImportError whose message says how to install it."""
    try:
        import optuna
    except ImportError:
        raise ImportError(MISSING_OPTUNA) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _suggest(trial: optuna.Trial, name: str, param: dict[str, Any]) -> Any:
    if param["type"] == "float":
        return trial.suggest_float(name, param["low"], param["high"], log=param["log"], step=param["step"])
    if param["type"] == "int":
        return trial.suggest_int(name, param["low"], param["high"], log=param["log"], step=param["step"])
    return trial.suggest_categorical(name, param["choices"])


@dataclass
class HpoResult:
    """What :func:`run_hpo` did: the study's rows (all its finished trials) and its best trial, if any."""

    sweep_dir: Path
    storage: str
    study_name: str
    rows: list[dict[str, Any]]
    ran: int
    best_trial: int | None = None
    best_value: float | None = None
    best_overrides: list[str] = field(default_factory=list)
    interrupted: bool = False


def open_study(spec: HpoSpec, storage: str, study_name: str) -> optuna.Study:
    """Create the study or load it (resume); check that a loaded one optimizes the same objective the same way."""
    optuna = import_optuna()
    try:
        study = optuna.create_study(
            storage=storage, study_name=study_name, direction=spec.direction, load_if_exists=True
        )
    except Exception as exc:  # SQLAlchemy and Optuna raise many kinds, all worth one line
        raise ConfigError(f"cannot open study '{study_name}' in {storage}: {str(exc).splitlines()[0]}") from None
    direction = study.direction.name.lower()
    objective = study.user_attrs.get("objective", spec.objective)
    if direction != spec.direction or objective != spec.objective:
        raise ConfigError(
            f"study '{study_name}' in {storage} is set to {direction} {objective}, not {spec.direction} "
            f"{spec.objective}; choose another --study-name"
        )
    study.set_user_attr("objective", spec.objective)
    # resuming: the seed moves on, or a seeded sampler would propose the first trials' points again
    finished = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    seed = None if spec.seed is None else spec.seed + finished
    samplers = optuna.samplers
    study.sampler = samplers.TPESampler(seed=seed) if spec.sampler == "tpe" else samplers.RandomSampler(seed=seed)
    return study


def _tell(
    study: optuna.Study, trial: optuna.Trial, row: dict[str, Any], overrides: list[str], objective: str
) -> dict[str, Any]:
    """Record the trial's cost and outcome (returned); a failed, interrupted or skipped run, or a missing or NaN
    objective, is a FAIL."""
    from optuna.trial import TrialState

    value, error = row["objective"], row["error"]
    ok = row["status"] in ("completed", "solved") and _is_number(value) and math.isfinite(value)
    if row["status"] == "interrupted":
        error = "stopped by Ctrl-C; no result told to the study"
    elif row["status"] == "skipped":
        error = "not started: the sweep was stopped by Ctrl-C"
    elif row["status"] != "failed" and value is None:
        error = f"{objective} is null in summary.json" + (" (no episode finished)" if "return" in objective else "")
    elif row["status"] != "failed" and not ok:
        error = f"{objective}={value!r} is not a finite number"
    attrs = {
        "steps": row["steps"],
        "seconds": row["seconds"],
        "sps": row["sps"],
        "run_dir": row["run_dir"],
        "status": row["status"] if ok or row["status"] in ("interrupted", "skipped") else "failed",
        "error": error,
        "overrides": overrides,
    }
    for key, attr in attrs.items():
        trial.set_user_attr(key, attr)
    if ok:
        study.tell(trial, float(value))
    else:
        study.tell(trial, state=TrialState.FAIL)
    return attrs


def study_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One summary row per finished trial of the study (this session's and earlier ones), by trial number."""
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False):
        if not t.state.is_finished():
            continue
        attrs = t.user_attrs
        complete = t.state == TrialState.COMPLETE
        rows.append(
            {
                "trial": t.number,
                "job": t.number,
                "overrides": " ".join(attrs.get("overrides", [])),
                "params": shown(t.params),
                "status": attrs.get("status", "completed" if complete else "failed"),
                "objective": t.value if complete else None,
                "sps": attrs.get("sps"),
                "steps": attrs.get("steps"),
                "seconds": attrs.get("seconds"),
                "run_dir": attrs.get("run_dir", ""),
                "error": "" if complete else attrs.get("error") or "no result: the sweep running it was interrupted",
            }
        )
    return rows


def run_hpo(
    spec: HpoSpec,
    extra: Sequence[str] = (),
    sweep_dir: Path | None = None,
    n_trials: int | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    jobs: int = 1,
    echo: Callable[[str], Any] | None = None,
) -> HpoResult:
    """Run the study until it holds ``n_trials`` finished trials; write ``sweep_summary.csv`` and ``best.yaml``.

    Args:
        spec: the search (:func:`load_hpo`).
        extra: overrides every trial gets, after the hpo file's ``fixed`` ones (replacing those of the same key).
        sweep_dir: where trial run directories (``<sweep dir>/<trial number>``) go (default ``multirun/<date>/<time>``).
        n_trials: finished trials the study should hold in all, earlier sessions' included (default ``spec.n_trials``).
        storage: an Optuna storage URL (default ``sqlite:///<sweep dir>/study.db``).
        study_name: default ``spec.name``; the same storage and name resume the study.
        jobs: trials run in parallel, each its own ``thrust train`` process.
        echo: called with one line per finished trial (and per stale trial marked failed).

    Returns:
        The rows of every finished trial of the study and its best trial (``best_trial`` None if none completed).
    """
    from optuna.trial import TrialState

    base = base_overrides(spec, extra)
    sweep_dir = make_sweep_dir(sweep_dir)
    storage = storage or f"sqlite:///{sweep_dir / 'study.db'}"
    study_name = study_name or spec.name
    study = open_study(spec, storage, study_name)
    note = {"storage": storage, "study_name": study_name, "overrides": base, "spec": dataclasses.asdict(spec)}
    (sweep_dir / "hpo.json").write_text(json.dumps(note, indent=2))
    # a trial left RUNNING by a killed sweep never finishes; one sweep runs a study at a time
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
        if echo:
            echo(f"trial {t.number}: marked failed (left running by an interrupted sweep)")
    for params in spec.enqueue:
        study.enqueue_trial(params, skip_if_exists=True)
    finished = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    to_run = max(0, (n_trials or spec.n_trials) - finished)

    lock, running = threading.Lock(), Jobs()
    started = 0

    def worker() -> None:
        nonlocal started
        while True:
            with lock:  # the storage is touched by one thread at a time
                if started >= to_run or running.stopping:
                    return
                started += 1
                trial = study.ask()
                values = {name: _suggest(trial, name, param) for name, param in spec.params.items()}
                overrides = [*base, *(format_override(k, v) for k, v in values.items())]
            row = run_job(trial.number, overrides, sweep_dir / str(trial.number), spec.objective, running)
            with lock:
                attrs = _tell(study, trial, row, overrides, spec.objective)
            if echo:
                outcome = f"{spec.objective}={row['objective']:.4g}" if not attrs["error"] else attrs["error"]
                echo(f"trial {trial.number}: {attrs['status']:9s} {outcome}  {shown(values)}")

    pool = ThreadPoolExecutor(max_workers=max(1, min(jobs, to_run)))
    try:  # a Ctrl-C stops the running trials (they end as interrupted) and starts no more
        interrupted = running.wait([pool.submit(worker) for _ in range(max(1, min(jobs, to_run)))])
    finally:
        running.stop(signal.SIGKILL)  # nothing is left running unless the study itself failed
        pool.shutdown(wait=True)

    rows = study_rows(study)
    write_summary(sweep_dir, rows, HPO_FIELDS)
    result = HpoResult(sweep_dir, storage, study_name, rows, ran=started, interrupted=interrupted)
    if any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        best = study.best_trial
        result.best_trial, result.best_value = best.number, best.value
        result.best_overrides = list(best.user_attrs.get("overrides", []))
        header = f"# best trial {best.number} of study '{study_name}' ({storage}): {spec.objective} = {best.value}\n"
        body = OmegaConf.to_yaml(OmegaConf.create(result.best_overrides))
        (sweep_dir / "best.yaml").write_text(header + f"# thrust train {shlex.join(result.best_overrides)}\n" + body)
    return result
