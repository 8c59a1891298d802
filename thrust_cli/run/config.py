"""Config composition, typed schemas and validation.

``compose_config(overrides)`` composes ``conf/`` with Hydra's Compose API and validates the result against the
schemas below, so that a wrong key, type or value fails at start with ONE line naming the key and what is
allowed (:class:`ConfigError`), never deep inside training.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A configuration problem, with a one-line message meant for the user."""


def conf_dir() -> Path:
    """``conf/`` of this installation: inside the package when installed, at the repo root when editable."""
    here = Path(__file__).resolve().parents[1]  # the thrust_cli package
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise ConfigError(f"Thrust's config directory was not found next to {here}; reinstall thrust-rl")


# --- checks ---------------------------------------------------------------------------------------------------
Check = tuple[Callable[[Any], bool], str]


def _meta(check: Check, default: Any) -> Any:
    return field(default=default, metadata={"check": check})


def positive(default: Any) -> Any:
    """A field with default ``default`` that must be > 0."""
    return _meta((lambda v: v > 0, "> 0"), default)


def at_least(lo: float, default: Any) -> Any:
    """A field with default ``default`` that must be >= ``lo``."""
    return _meta((lambda v: v >= lo, f">= {lo}"), default)


def in_range(lo: float, hi: float, default: Any) -> Any:
    """A field with default ``default`` that must lie in ``[lo, hi]``."""
    return _meta((lambda v: lo <= v <= hi, f"in [{lo}, {hi}]"), default)


def one_of(choices: Sequence[str], default: str) -> Any:
    """A field with default ``default`` that must be one of ``choices``."""
    return _meta((lambda v: v in choices, "one of " + ", ".join(choices)), default)


def optional_one_of(choices: Sequence[str], default: str | None) -> Any:
    """A field with default ``default`` that must be null or one of ``choices``."""
    return _meta((lambda v: v is None or v in choices, "null or one of " + ", ".join(choices)), default)


def auto_or_positive_int(default: Any) -> Any:
    """A field with default ``default`` that must be ``'auto'`` or an int >= 1."""
    return _meta((lambda v: v == "auto" or (isinstance(v, int) and v >= 1), "'auto' or an int >= 1"), default)


def optional_positive(default: Any = None) -> Any:
    """A field with default ``default`` that must be null or > 0."""
    return _meta((lambda v: v is None or v > 0, "> 0 or null"), default)


# --- schemas --------------------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    """The ``train`` section: budget, stopping target, checkpoints, threads, progress, mixed precision, compile."""

    total_timesteps: int = positive(500_000)
    target_return: float | None = None
    target_window: int = positive(100)
    checkpoint_interval: int = positive(100_000)
    torch_threads: int = at_least(0, 1)
    keep_last: int | None = optional_positive(None)
    best_metric: str | None = "episode_return"
    best_mode: str = one_of(("max", "min"), "max")
    progress: str = one_of(("auto", "rich", "plain", "none"), "auto")
    amp: str = one_of(("none", "bf16", "fp16"), "none")
    compile: bool = False


@dataclass
class CartPoleEnvConfig:
    """``env=cartpole``: the C CartPole-v1, bit-exact with Gymnasium's."""

    name: str = "cartpole"
    num_envs: int = positive(32)
    max_steps: int = positive(500)


@dataclass
class GymEnvConfig:
    """``env=gym``: any Gymnasium env by ``id``, made with ``kwargs``, through the Gymnasium adapter."""

    name: str = "gym"
    id: str = "CartPole-v1"
    num_envs: int = positive(8)
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class BusyEnvConfig:
    """``env=busy``: a synthetic env that burns ``work`` units of CPU per step (vectorizer benchmarks)."""

    name: str = "busy"
    num_envs: int = positive(64)
    work: int = at_least(0, 1000)
    # data parallel: rank r uses work_per_rank[r] instead of work (load-imbalance measurements); null: work
    work_per_rank: list[int] | None = None
    obs_dim: int = positive(4)
    max_steps: int = positive(100)


@dataclass
class MemoryEnvConfig:
    """``env=memory``: answer a cue seen ``k`` steps earlier (a test of recurrent policies)."""

    name: str = "memory"
    num_envs: int = positive(64)
    k: int = positive(8)


@dataclass
class SnakeEnvConfig:
    """``env=snake``: multi-agent Snake, ``num_snakes`` per board of ``width`` × ``height`` cells."""

    name: str = "snake"
    num_envs: int = positive(2)  # boards
    num_snakes: int = positive(256)
    width: int = positive(128)
    height: int = positive(128)
    num_food: int = at_least(0, 512)
    vision: int = positive(5)
    max_steps: int = positive(1000)
    reward_food: float = 1.0
    reward_death: float = -1.0
    reward_step: float = 0.0


@dataclass
class PendulumEnvConfig:
    """``env=pendulum``: the C Pendulum-v1 (continuous actions), bit-exact with Gymnasium's."""

    name: str = "pendulum"
    num_envs: int = positive(16)
    max_steps: int = positive(200)
    g: float = 10.0  # gravity, Pendulum-v1's g


@dataclass
class AsteroidsEnvConfig:
    """``env=asteroids``: the C Asteroids arcade game with ``num_lives`` lives."""

    name: str = "asteroids"
    num_envs: int = positive(128)
    max_steps: int = positive(4500)  # time limit of an episode (75 s of the arcade game at 60 steps/s)
    num_lives: int = positive(3)


@dataclass
class CustomEnvConfig:
    """``env=custom``: an env class or factory of your own, named by ``entry_point`` (``package.module:Name``)."""

    name: str = "custom"
    entry_point: str | None = None
    num_envs: int = positive(8)
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class MLPConfig:
    """``policy=mlp``: actor-critic MLP trunks (separate or shared) with a Categorical or Gaussian head."""

    name: str = "mlp"
    hidden_size: int = positive(64)
    num_layers: int = at_least(0, 2)
    activation: str = one_of(("tanh", "relu", "gelu"), "tanh")
    shared: bool = False
    squash: bool = False  # Box actions: tanh squashing into the bounds (else clipping)
    log_std_init: float = 0.0  # Box actions: initial log std of the Gaussian head


@dataclass
class LSTMConfig:
    """``policy=lstm``: encoder, one LSTM layer, actor and critic heads, trained with exact BPTT."""

    name: str = "lstm"
    hidden_size: int = positive(128)
    squash: bool = False  # Box actions: tanh squashing into the bounds (else clipping)
    log_std_init: float = 0.0  # Box actions: initial log std of the Gaussian head


@dataclass
class PPOConfig:
    """``algo=ppo``: rollout length, minibatches, GAE, clipping, KL control and prioritized segment replay."""

    name: str = "ppo"
    num_steps: int = positive(128)
    minibatch_size: int = positive(512)
    update_epochs: int = positive(4)
    gamma: float = in_range(0.0, 1.0, 0.99)
    gae_lambda: float = in_range(0.0, 1.0, 0.95)
    clip_coef: float | None = optional_positive(0.2)
    anneal_clip: bool = False
    dual_clip_c: float | None = _meta((lambda v: v is None or v > 1, "> 1 or null"), None)
    vf_clip_coef: float | None = optional_positive(0.2)
    vf_coef: float = at_least(0.0, 0.5)
    ent_coef: float = at_least(0.0, 0.0)
    max_grad_norm: float = positive(0.5)
    norm_adv: bool = True
    anneal_lr: bool = True
    target_kl: float | None = optional_positive(None)
    kl_coef: float | None = optional_positive(None)
    prio: bool = False
    prio_alpha: float = at_least(0.0, 0.8)
    prio_beta0: float = in_range(0.0, 1.0, 0.2)
    bptt_horizon: int = positive(16)


@dataclass
class VTraceConfig(PPOConfig):
    """``algo=vtrace``: PPO's options plus V-trace's truncation levels and which policy's ratios to use."""

    name: str = "vtrace"
    rho_clip: float = positive(1.0)
    c_clip: float = positive(1.0)
    rho_pg_clip: float | None = optional_positive(1.0)
    ratios: str = one_of(("fresh", "seen"), "fresh")


@dataclass
class SerialVecConfig:
    """``vec=serial``: the envs step in the trainer's process."""

    name: str = "serial"
    num_objects: int = positive(1)


@dataclass
class MultiprocessingVecConfig:
    """``vec=multiprocessing``: workers step the envs into shared memory; ``batch_size`` < all envs is async."""

    name: str = "multiprocessing"
    num_workers: Any = auto_or_positive_int("auto")  # noqa: RUF009 - returns a dataclasses.field
    batch_size: int | None = optional_positive(None)
    start_method: str | None = optional_one_of(("fork", "forkserver", "spawn"), None)


@dataclass
class TopConfig:
    """The top-level keys: seed, learning rate, device and the run to resume."""

    seed: int = at_least(0, 1)
    lr: float = positive(2.5e-4)
    device: str = one_of(("cpu", "cuda", "auto"), "cpu")
    resume: str | None = None


@dataclass
class DistConfig:
    """The ``dist`` section: data-parallel training (docs/distributed.md). Under torchrun the job's size comes
    from torchrun; ``nproc`` is for ``thrust train dist.nproc=N``, which starts the ranks itself."""

    nproc: int = positive(1)  # ranks started by `thrust train` on this machine (1: no data parallelism)
    backend: str = one_of(("auto", "gloo", "nccl"), "auto")  # auto: nccl for device=cuda, else gloo
    timeout_s: float = positive(300.0)  # a collective waiting longer (a hung or dead rank) fails the run
    max_restarts: int = at_least(0, 0)  # `thrust train dist.nproc=N`: elastic restarts after a rank fails


LOGGER_BACKENDS = ("tensorboard", "wandb", "neptune")
# backend -> (module it imports, pip extra of thrust-rl that installs it)
LOGGER_EXTRAS = {"wandb": ("wandb", "wandb"), "neptune": ("neptune", "neptune")}


@dataclass
class WandbConfig:
    """``logger.wandb``: the Weights & Biases project, entity and mode."""

    project: str = "thrust"
    entity: str | None = None
    mode: str = one_of(("offline", "online", "disabled"), "offline")


@dataclass
class NeptuneConfig:
    """``logger.neptune``: the Neptune project and mode."""

    project: str | None = None  # workspace/project, for a self-hosted server (mode async or sync)
    mode: str = one_of(("offline", "async", "sync", "debug"), "offline")


@dataclass
class LoggerConfig:
    """The ``logger`` group (conf/logger/): metric backends besides ``metrics.jsonl`` and the live dashboard."""

    backends: list[str] = field(
        default_factory=lambda: ["tensorboard"],
        metadata={
            "check": (
                lambda v: all(b in LOGGER_BACKENDS for b in v) and len(set(v)) == len(v),
                "a list of distinct names from " + ", ".join(LOGGER_BACKENDS),
            )
        },
    )
    dashboard: bool = True
    run_name: str | None = None  # W&B / Neptune run name (null: the run directory's name)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    neptune: NeptuneConfig = field(default_factory=NeptuneConfig)


GROUPS: dict[str, dict[str, type]] = {
    "env": {
        "cartpole": CartPoleEnvConfig,
        "gym": GymEnvConfig,
        "busy": BusyEnvConfig,
        "memory": MemoryEnvConfig,
        "snake": SnakeEnvConfig,
        "pendulum": PendulumEnvConfig,
        "asteroids": AsteroidsEnvConfig,
        "custom": CustomEnvConfig,
    },
    "policy": {"mlp": MLPConfig, "lstm": LSTMConfig},
    "algo": {"ppo": PPOConfig, "vtrace": VTraceConfig},
    "vec": {"serial": SerialVecConfig, "multiprocessing": MultiprocessingVecConfig},
}
SECTIONS: dict[str, type] = {"train": TrainConfig, "logger": LoggerConfig, "dist": DistConfig}


# --- validation -----------------------------------------------------------------------------------------------
def _type_name(schema: type, key: str) -> str:
    for f in fields(schema):
        if f.name == key:
            return str(f.type).replace("builtins.", "")
    return "?"


def _check_node(node: Any, schema: type, prefix: str) -> Any:
    """Merge ``node`` into the typed ``schema``; raise ConfigError naming ``prefix.key`` on any problem."""
    allowed = [f.name for f in fields(schema)]

    def full(key: str) -> str:
        return f"{prefix}.{key}" if prefix else key

    if not isinstance(node, DictConfig):
        raise ConfigError(f"'{prefix}' must be a mapping with keys: {', '.join(allowed)}")
    for key in map(str, node):
        if key not in allowed:
            where = f"'{prefix}'" if prefix else "the top level"
            raise ConfigError(f"unknown key '{full(key)}'; allowed keys in {where}: {', '.join(allowed)}")
    for f in fields(schema):  # nested schemas (logger.wandb): their own messages and checks
        if isinstance(f.default_factory, type) and is_dataclass(f.default_factory) and f.name in node:
            _check_node(node[f.name], f.default_factory, full(f.name))
    try:
        typed: Any = OmegaConf.merge(OmegaConf.structured(schema), node)
    except OmegaConfBaseException as exc:
        bad = str(exc.key) if exc.key is not None else "?"
        value = node.get(bad) if bad in node else exc.value
        raise ConfigError(f"{full(bad)}={value!r} is invalid: expected {_type_name(schema, bad)}") from None
    for f in fields(schema):
        check = f.metadata.get("check")
        value = typed[f.name]
        if check is not None and value is not None and not check[0](value):
            raise ConfigError(f"{full(f.name)}={value!r} is invalid: must be {check[1]}")
    return typed


def validate(cfg: DictConfig) -> DictConfig:
    """Return a typed copy of the run config ``cfg`` (without ``hydra``), or raise :class:`ConfigError`."""
    out: dict[str, Any] = {}
    top_keys = {f.name for f in fields(TopConfig)} | set(GROUPS) | set(SECTIONS)
    for key in map(str, cfg):
        if key != "hydra" and key not in top_keys:
            raise ConfigError(f"unknown key '{key}'; allowed top-level keys: {', '.join(sorted(top_keys))}")
    top = OmegaConf.create({k: cfg[k] for k in (f.name for f in fields(TopConfig)) if k in cfg})
    out.update({str(k): v for k, v in _check_node(top, TopConfig, "").items()})
    for section, schema in SECTIONS.items():
        out[section] = _check_node(cfg.get(section, OmegaConf.create({})), schema, section)
    for group, options in GROUPS.items():
        node = cfg.get(group)
        name = node.get("name") if isinstance(node, DictConfig) else None
        if name not in options:
            raise ConfigError(f"{group}.name={name!r} is invalid; allowed: {', '.join(options)}")
        out[group] = _check_node(node, options[name], group)
    _check_vec(out["vec"], out["env"].num_envs)
    _check_algo(out["algo"], out["policy"].name)
    _check_logger(out["logger"])
    _check_dist(out["dist"], out["device"])
    typed = OmegaConf.create(out)
    OmegaConf.set_struct(typed, True)
    return typed


def _check_algo(algo: Any, policy: str) -> None:
    """Cross-field checks of the ``algo`` options."""
    if (policy == "lstm" or algo.prio) and algo.num_steps % algo.bptt_horizon:
        why = "with policy=lstm" if policy == "lstm" else "with algo.prio=true (segments of bptt_horizon steps)"
        raise ConfigError(
            f"algo.num_steps={algo.num_steps} must be a multiple of algo.bptt_horizon={algo.bptt_horizon} {why}"
        )
    if algo.kl_coef is not None and algo.target_kl is None:
        raise ConfigError("algo.kl_coef (adaptive KL penalty) needs algo.target_kl, the KL it adapts toward")
    if algo.dual_clip_c is not None and algo.clip_coef is None:
        raise ConfigError("algo.dual_clip_c needs algo.clip_coef (dual-clip bounds the clipped surrogate)")


def _check_dist(dist: Any, device: str) -> None:
    """``dist.backend=nccl`` needs a CUDA device."""
    if dist.backend == "nccl" and device == "cpu":
        raise ConfigError("dist.backend=nccl needs device=cuda (or auto); use dist.backend=gloo (or auto) on CPU")


def _check_logger(logger: Any) -> None:
    """Each chosen backend's optional package is installed (named by its pip extra when missing)."""
    from importlib.util import find_spec

    for backend in logger.backends:
        module, extra = LOGGER_EXTRAS.get(backend, (None, None))
        if module is not None and find_spec(module) is None:
            raise ConfigError(
                f"logger.backends has {backend} but the {module} package is not installed; "
                f"install it with: pip install 'thrust-rl[{extra}]'"
            )


def _check_vec(vec: Any, num_envs: int) -> None:
    """Cross-field checks of the vectorizer against ``env.num_envs``."""
    if vec.name == "serial":
        if num_envs % vec.num_objects:
            raise ConfigError(f"env.num_envs={num_envs} must be a multiple of vec.num_objects={vec.num_objects}")
        return
    from thrust_cli.vector.envs import resolve_num_workers

    workers = resolve_num_workers(vec.num_workers, num_envs)
    if num_envs % workers:
        raise ConfigError(f"env.num_envs={num_envs} must be a multiple of vec.num_workers={workers}")
    per_worker = num_envs // workers
    if vec.batch_size is not None and (vec.batch_size > num_envs or vec.batch_size % per_worker):
        raise ConfigError(
            f"vec.batch_size={vec.batch_size} is invalid: must be a multiple of env.num_envs / vec.num_workers = "
            f"{per_worker}, at most env.num_envs={num_envs} (or null for sync)"
        )


# --- composition ----------------------------------------------------------------------------------------------
def _compose(overrides: Sequence[str], with_hydra: bool) -> DictConfig:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=with_hydra)


def _explain(exc: Exception, overrides: Sequence[str]) -> str:
    """Turn a Hydra composition error into one line naming the key and what is allowed."""
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(exc, OverrideParseException):
        return f"invalid override '{exc.override}': {exc.message.splitlines()[0]}"
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options is not None:
        group, _, choice = exc.missing_cfg_file.rpartition("/")
        return f"unknown option {group}={choice}; allowed: {', '.join(sorted(exc.options))}"
    text = str(exc)
    match = re.search(r"Could not override '([^']+)'", text)
    if match:
        key = match.group(1)
        parent, _, _ = key.rpartition(".")
        rest = [o for o in overrides if not o.lstrip("+~").startswith(key + "=") and o.lstrip("~") != key]
        try:
            base = _compose(rest, with_hydra=False)
            node = OmegaConf.select(base, parent) if parent else base
            keys = [str(k) for k in node] if isinstance(node, DictConfig) else []
        except Exception:
            keys = []
        where = f"'{parent}'" if parent else "the top level"
        if not keys:
            return f"unknown config key '{key}'; to add a new key write +{key}=..."
        return f"unknown config key '{key}'; allowed keys in {where}: {', '.join(keys)}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def compose_config(overrides: Sequence[str], with_hydra: bool = True) -> DictConfig:
    """Compose ``conf/config.yaml`` with Hydra ``overrides``; validate the run part.

    Returns the composed config (with the ``hydra`` node when ``with_hydra``); its run part has passed
    :func:`validate`. Raises :class:`ConfigError` with a one-line message on any problem.
    """
    from hydra.errors import HydraException

    try:
        cfg = _compose(overrides, with_hydra)
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        raise ConfigError(_explain(exc, overrides)) from None
    validate(cfg)
    return cfg


def resume_config(run_dir: str | Path, overrides: Sequence[str]) -> DictConfig:
    """The saved config of ``run_dir`` with ``key=value`` ``overrides`` on top (e.g. a longer
    ``train.total_timesteps``), and ``resume`` set to the run directory.

    Raises:
        ConfigError: no such run, or an override that would change the run's groups (env, policy, ...).
    """
    saved = Path(run_dir) / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"cannot resume '{run_dir}': no run directory with .hydra/config.yaml there")
    saved_cfg = OmegaConf.load(saved)
    kept = []
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key in GROUPS and value and OmegaConf.select(saved_cfg, f"{key}.name") == value:
            continue  # the run's own group, restated: nothing changes
        if "=" not in override or key in GROUPS or key in SECTIONS:
            raise ConfigError(
                f"cannot change '{override}' when resuming; allowed: key=value overrides of the saved config"
            )
        kept.append(override)
    try:
        cfg = OmegaConf.merge(saved_cfg, OmegaConf.from_dotlist([o.lstrip("+") for o in kept]))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"invalid override when resuming: {str(exc).splitlines()[0]}") from None
    cfg.resume = str(Path(run_dir).resolve())
    validate(cfg)  # type: ignore[arg-type]
    return cfg  # type: ignore[return-value]


def run_part(cfg: DictConfig) -> DictConfig:
    """The typed, validated run config (everything but ``hydra``)."""
    return validate(cfg)
