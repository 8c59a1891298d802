"""Export a trained policy to ONNX (inference anywhere) and to safetensors (weights plus a self-describing header).

ONNX: one self-contained file (no ``.onnx.data`` sidecar), written by torch's dynamo exporter at opset 18 — the
opset its op library (onnxscript's torchlib) is written in, so no version conversion runs; onnxruntime has run
opset 18 since 1.14, onnxruntime-web included. Every export is checked: onnxruntime and torch run the same
observations — drawn from the env's observation space at batch 1 and 7, plus real observations of a short random
rollout (:mod:`~thrust_cli.commands.export_check`) — and a difference above :data:`TOLERANCE` deletes the file
and raises.

safetensors: the policy's ``state_dict`` under its own names, with JSON metadata describing the architecture,
spaces and tensor layout, enough to rebuild the policy without Thrust's config (:func:`load_safetensors_policy`);
written by :mod:`thrust_cli.commands.safetensors_format`, whose API is re-exported here.

Discrete policies export ``logits``; Gaussian (Box) policies export the deterministic env action (the clipped or
tanh-squashed mean, what ``thrust eval`` runs by default), the pre-squash mean and ``log_std``, from which a caller
can sample (:func:`output_names`).

onnx, onnxscript, onnxruntime and safetensors are imported inside the functions: ``import thrust_cli.commands.export``
costs nothing extra, and a missing package is reported in one line. See docs/export.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from thrust_cli.commands.export_check import check_observations, fallback_space, root_cause, space_observations
from thrust_cli.commands.safetensors_format import (  # noqa: F401 - the safetensors API is re-exported here
    FORMAT,
    FORMAT_VERSION,
    SAFETENSORS_MISSING,
    _action_space,
    _output_path,
    _replace,
    _writable_tmp,
    export_safetensors,
    gaussian_head,
    load_safetensors_policy,
    read_safetensors_metadata,
)
from thrust_cli.run.checkpoint import load_policy

if TYPE_CHECKING:
    import gymnasium

DEFAULT_OPSET = 18
TOLERANCE = 1e-4
CHECK_BATCH_SIZES = (1, 7)
ONNX_MISSING = "ONNX export needs onnx, onnxscript and onnxruntime: pip install 'thrust-rl[export]'"


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and how closely onnxruntime matched torch.

    ``inputs``/``outputs`` map each ONNX name to its shape, ``"batch"`` marking the dynamic axis.
    """

    path: Path
    opset: int
    recurrent: bool
    max_abs_diff: float  # absolute up to magnitude 1, relative above (see _onnx_max_abs_diff)
    inputs: dict[str, list[int | str]] = field(default_factory=dict)
    outputs: dict[str, list[int | str]] = field(default_factory=dict)
    batch_sizes: tuple[int, ...] = CHECK_BATCH_SIZES
    exporter: str = "torch.onnx.export(dynamo=True)"
    check_inputs: str = "standard normal observations"  # where the checked observations came from

    def summary(self) -> str:
        """One line for the CLI: the file written, its opset, inputs and outputs, and the onnxruntime check."""
        sizes = " and ".join(str(b) for b in self.batch_sizes)
        return (
            f"wrote {self.path} (ONNX opset {self.opset}; inputs {', '.join(self.inputs)}; "
            f"outputs {', '.join(self.outputs)}); onnxruntime vs torch max abs diff {self.max_abs_diff:.1e} "
            f"at batch {sizes} ({self.check_inputs})"
        )


def is_recurrent(policy: nn.Module) -> bool:
    """A policy is recurrent if it says so (``recurrent = True``) or has an ``initial_state(batch)`` method."""
    return bool(getattr(policy, "recurrent", False)) or callable(getattr(policy, "initial_state", None))


def format_output(output: str | os.PathLike[str] | None, suffix: str, both: bool) -> str | None:
    """The ``output`` of one format when the CLI writes one format or ``both``.

    A directory (an existing one, or a path ending in '/') stays as it is: each format writes ``policy<suffix>``
    inside it. With one format a file name is the file itself; with both, each format replaces the name's
    extension by its own (``-o p.onnx`` writes ``p.onnx`` and ``p.safetensors`` beside it).
    """
    if output is None:
        return None
    text = os.fspath(output)
    if not both or Path(text).is_dir() or text.endswith(("/", os.sep)):
        return text
    return str(Path(text).with_suffix(suffix))


def output_names(policy: nn.Module) -> list[str]:
    """The ONNX outputs of ``policy``, in order.

    Discrete: ``logits, values``. Gaussian: ``action`` (the deterministic env action
    ``dist.to_env(dist.mode(mean))``), ``action_mean`` (before clipping/squashing), ``values``, ``log_std``.
    Recurrent policies append ``h_out, c_out``.
    """
    names = ["action", "action_mean", "values", "log_std"] if gaussian_head(policy) else ["logits", "values"]
    return [*names, "h_out", "c_out"] if is_recurrent(policy) else names


def _head_outputs(policy: nn.Module, head: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``(logits, values)``, or for a Gaussian head ``(action, action_mean, values, log_std)``."""
    dist = gaussian_head(policy)
    if dist is None:
        return head, values
    return dist.to_env(dist.mode(head)), head, values, dist.log_std


class _FeedForward(nn.Module):
    """The exported signature of a feed-forward policy: ``observations ->`` :func:`output_names`."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, observations: torch.Tensor) -> tuple[torch.Tensor, ...]:
        head, values = self.policy(observations)
        return _head_outputs(self.policy, head, values)


class _Recurrent(nn.Module):
    """The exported signature of a recurrent policy: the state as explicit tensors in and out."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, observations: torch.Tensor, h_in: torch.Tensor, c_in: torch.Tensor) -> tuple[torch.Tensor, ...]:
        head, values, (h_out, c_out) = self.policy(observations, (h_in, c_in))
        return *_head_outputs(self.policy, head, values), h_out, c_out


def export_onnx(
    path_or_run: str | os.PathLike[str], output: str | os.PathLike[str] | None = None, opset: int = DEFAULT_OPSET
) -> ExportReport:
    """Export the policy of a run directory (latest checkpoint) or checkpoint file to one ``.onnx`` file.

    The check runs observations of the run's env (:func:`check_observations`).

    Args:
        path_or_run: run directory or checkpoint file.
        output: file to write, or a directory (existing, or ending in '/') to write ``policy.onnx`` in; default
            ``<run-dir>/export/policy.onnx``, or ``<checkpoint>.onnx`` next to a checkpoint file.
        opset: ONNX opset; 18 needs no version conversion by the dynamo exporter.

    Returns:
        an :class:`ExportReport`; see :func:`export_policy_onnx`.

    Raises:
        FileNotFoundError, ValueError: no checkpoint, an unreadable one, an unwritable output
            (``cannot write '<path>': <reason>``), a failed export or check.
        ImportError: onnx, onnxscript or onnxruntime is missing (one-line message).
    """
    _require_onnx()
    policy, cfg, state = load_policy(path_or_run)
    spaces = state["spaces"]
    target = _output_path(path_or_run, state["path"], output, ".onnx")
    _writable_tmp(target).unlink()  # fail on an unwritable output before the slow export
    space, observations, source = check_observations(cfg.env, spaces)
    metadata = {
        "thrust_format_version": FORMAT_VERSION,
        "architecture": str(cfg.policy.name),
        "observation_shape": json.dumps(list(spaces["obs_shape"])),
        "observation_dtype": str(spaces.get("obs_dtype", "float32")),
        "num_actions": str(spaces["num_actions"]),
        "recurrent": json.dumps(is_recurrent(policy)),
        "global_step": str(state["global_step"]),
        "action_space": json.dumps(_action_space(spaces)),
    }
    dist = gaussian_head(policy)
    if dist is not None:
        metadata["squash"] = json.dumps(bool(dist.squash))
    return export_policy_onnx(
        policy,
        tuple(spaces["obs_shape"]),
        target,
        opset=opset,
        obs_dtype=spaces.get("obs_dtype"),
        metadata=metadata,
        observation_space=space,
        observations=observations,
        check_inputs=source,
    )


def export_policy_onnx(
    policy: nn.Module,
    obs_shape: tuple[int, ...],
    output: str | os.PathLike[str],
    opset: int = DEFAULT_OPSET,
    obs_dtype: str | None = None,
    metadata: dict[str, str] | None = None,
    observation_space: gymnasium.spaces.Box | None = None,
    observations: np.ndarray | None = None,
    check_inputs: str | None = None,
) -> ExportReport:
    """Export ``policy`` to ``output`` and check it against torch with onnxruntime.

    Feed-forward policies (``policy(obs) -> (logits, values)``) get inputs ``observations`` and outputs
    ``logits, values``. Recurrent ones (:func:`is_recurrent`; ``policy(obs, (h, c)) -> (logits, values, (h, c))``
    and ``initial_state(batch) -> (h, c)``) also get inputs ``h_in, c_in`` and outputs ``h_out, c_out``.
    A policy whose ``dist`` is a :class:`~thrust_cli.learn.distributions.Gaussian` (its forward returns the mean in
    place of logits) outputs ``action, action_mean, values, log_std`` instead of ``logits, values``
    (:func:`output_names`). The file is written to a temporary name and renamed only after the check passes
    (mode 0666 less the umask).

    Args:
        policy: the torch module (put in eval mode here).
        obs_shape: shape of one observation.
        output: the ``.onnx`` file to write.
        opset: ONNX opset.
        obs_dtype: the env's observation dtype, used only without ``observation_space`` to draw check inputs:
            integer dtypes draw codes ``0 .. policy.num_codes - 1`` when the policy one-hot encodes them, else
            integers in [0, 255]; float dtypes draw standard normal values. The ONNX input is float32 whatever it is.
        metadata: extra ``metadata_props`` of the ONNX model (readable with onnxruntime's ``get_modelmeta()``).
        observation_space: the env's observation space: check observations are drawn within its bounds
            (uniform where both are finite, integers for integer dtypes; see :mod:`~thrust_cli.commands.export_check`).
        observations: real env observations, checked as one more batch.
        check_inputs: how the check observations were chosen, for the report (default: from the arguments).

    Returns:
        an :class:`ExportReport` with the largest difference over all outputs and checked batch sizes.

    Raises:
        ValueError: the output cannot be written (``cannot write '<path>': <reason>``), the exporter failed, or
            onnxruntime differs from torch by more than :data:`TOLERANCE`.

    Shapes:
        observations: [batch, *obs_shape] float32; logits: [batch, num_actions]; values: [batch];
        action, action_mean: [batch, num_actions]; log_std: [num_actions];
        h_in, c_in, h_out, c_out: [num_layers, batch, hidden_size].
    """
    _require_onnx()
    import onnx

    policy.eval()
    recurrent = is_recurrent(policy)
    output = Path(output)
    space = observation_space if observation_space is not None else fallback_space(policy, obs_shape, obs_dtype)
    rng = np.random.default_rng(0)
    batches = [space_observations(space, obs_shape, b, rng) for b in CHECK_BATCH_SIZES]
    if observations is not None:
        batches.append(np.asarray(observations, dtype=np.float32).reshape(-1, *obs_shape))
    if check_inputs is None:
        bounds = "standard normal" if space is None else f"{space} bounded"
        check_inputs = f"{bounds} observations{' and the given ones' if observations is not None else ''}"
    tmp = _writable_tmp(output)
    input_names = ["observations", "h_in", "c_in"] if recurrent else ["observations"]
    outputs = output_names(policy)
    wrapper = _Recurrent(policy) if recurrent else _FeedForward(policy)
    generator = torch.Generator().manual_seed(0)
    batch = torch.export.Dim("batch", min=1)
    # Trace at batch 3: a batch of 1 would be specialised to a constant by torch.export.
    sample = _with_state(policy, space_observations(space, obs_shape, 3, rng), recurrent, generator)
    dynamic_shapes: dict[str, dict[int, Any]] = {"observations": {0: batch}}
    if recurrent:
        dynamic_shapes.update(h_in={1: batch}, c_in={1: batch})
    try:
        with _quiet_exporter():
            torch.onnx.export(
                wrapper,
                tuple(sample),
                str(tmp),
                input_names=input_names,
                output_names=outputs,
                dynamic_shapes=dynamic_shapes,
                opset_version=opset,
                external_data=False,
                dynamo=True,
                verbose=False,
            )
        model = onnx.load(str(tmp))
        _declare_output_shapes(model, wrapper, [sample, _with_state(policy, batches[0], recurrent, generator)])
        for key, value in (metadata or {}).items():
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, str(tmp))
        onnx.checker.check_model(str(tmp))
        diffs = [_onnx_max_abs_diff(tmp, wrapper, _with_state(policy, obs, recurrent, generator)) for obs in batches]
        diff = float(np.max(diffs))  # NaN-propagating, unlike the builtin max
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"ONNX export of {type(policy).__name__} failed: {root_cause(exc)}") from exc
    if not diff <= TOLERANCE:  # also catches NaN
        tmp.unlink(missing_ok=True)
        raise ValueError(
            f"ONNX check failed: onnxruntime differs from torch by {diff:.3g} (> {TOLERANCE:g}); nothing written"
        )
    _replace(tmp, output)
    shapes = {name: list(shape) for name, shape in _io_shapes(onnx.load(str(output), load_external_data=False))}
    return ExportReport(
        path=output,
        opset=opset,
        recurrent=recurrent,
        max_abs_diff=diff,
        inputs={name: shapes[name] for name in input_names},
        outputs={name: shapes[name] for name in outputs},
        batch_sizes=tuple(len(obs) for obs in batches),
        check_inputs=check_inputs,
    )


def _with_state(policy: nn.Module, obs: np.ndarray, recurrent: bool, generator: torch.Generator) -> list[torch.Tensor]:
    """Check inputs: the observations as float32 (and a perturbed initial state for recurrent policies)."""
    observations = torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32))
    if not recurrent:
        return [observations]
    h, c = policy.initial_state(len(obs))  # type: ignore[operator]
    h = h.float() + 0.5 * torch.randn(h.shape, generator=generator)
    c = c.float() + 0.5 * torch.randn(c.shape, generator=generator)
    return [observations, h, c]


def _onnx_max_abs_diff(path: Path, wrapper: nn.Module, inputs: list[torch.Tensor]) -> float:
    """Largest difference between onnxruntime and torch over all outputs for ``inputs``: absolute for entries
    of magnitude up to 1, relative above (float32 rounding grows with the magnitude, e.g. values of -160); NaN
    where either side has a NaN (the builtin ``max`` would drop it)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {arg.name: x.numpy() for arg, x in zip(session.get_inputs(), inputs, strict=True)}
    got = session.run(None, feeds)
    with torch.no_grad():
        expected = wrapper(*inputs)
    diff = 0.0
    for name, a, b in zip([o.name for o in session.get_outputs()], got, expected, strict=True):
        if tuple(a.shape) != tuple(b.shape):
            raise ValueError(f"output '{name}' has shape {list(a.shape)} in onnxruntime, {list(b.shape)} in torch")
        ref = b.detach().double().numpy()
        scaled = np.abs(a.astype(np.float64) - ref) / np.maximum(1.0, np.abs(ref))
        diff = float(np.max(scaled, initial=diff))  # NaN-propagating
    return diff


def _declare_output_shapes(model: Any, wrapper: nn.Module, samples: list[list[torch.Tensor]]) -> None:
    """Declare each graph output's shape as torch computes it, ``"batch"`` on the axes that follow the batch.

    Two samples of different batch sizes tell which axes those are. Some exporters declare a wrong shape (torch
    2.11 gave an LSTM's ``h_out`` ``[2, 1, batch, 16]`` for a ``[2, batch, 16]`` tensor, which onnxruntime then
    warns about); the values were right, so the declaration is what gets fixed.
    """
    with torch.no_grad():
        shapes = [[tuple(x.shape) for x in wrapper(*inputs)] for inputs in samples]
    for value, *sizes in zip(model.graph.output, *shapes, strict=True):
        if len({len(s) for s in sizes}) != 1:
            raise ValueError(f"output '{value.name}' changes rank with the batch size: {sizes}")
        dims = value.type.tensor_type.shape
        dims.ClearField("dim")
        for axis_sizes in zip(*sizes, strict=True):
            dim = dims.dim.add()
            if len(set(axis_sizes)) > 1:
                dim.dim_param = "batch"
            else:
                dim.dim_value = axis_sizes[0]


def _io_shapes(model: Any) -> list[tuple[str, list[int | str]]]:
    """(name, shape) of each graph input and output; symbolic axes by name."""
    result = []
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        result.append((value.name, [d.dim_param if d.dim_param else d.dim_value for d in dims]))
    return result


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's log lines, warnings ('torchvision is not installed') and printed graph dumps.

    The error raised on failure still carries the cause (see :func:`~thrust_cli.commands.export_check.root_cause`).
    """
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._export", "torch.fx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ImportError(ONNX_MISSING) from None
