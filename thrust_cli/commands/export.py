"""Export a trained policy to ONNX (inference anywhere) and to safetensors (weights plus a self-describing header).

ONNX: one self-contained file (no ``.onnx.data`` sidecar), written by torch's dynamo exporter at opset 18 — the
opset its op library (onnxscript's torchlib) is written in, so no version conversion runs; onnxruntime has run
opset 18 since 1.14, onnxruntime-web included. Every export is checked: onnxruntime and torch run the same random
inputs at batch 1 and 7, and a difference above :data:`TOLERANCE` deletes the file and raises.

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
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from thrust_cli.commands.safetensors_format import (  # noqa: F401 - the safetensors API is re-exported here
    FORMAT,
    FORMAT_VERSION,
    SAFETENSORS_MISSING,
    _action_space,
    _output_path,
    export_safetensors,
    gaussian_head,
    load_safetensors_policy,
    read_safetensors_metadata,
)
from thrust_cli.run.checkpoint import load_policy

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

    def summary(self) -> str:
        """One line for the CLI."""
        sizes = " and ".join(str(b) for b in self.batch_sizes)
        return (
            f"wrote {self.path} (ONNX opset {self.opset}; inputs {', '.join(self.inputs)}; "
            f"outputs {', '.join(self.outputs)}); onnxruntime vs torch max abs diff {self.max_abs_diff:.1e} "
            f"at batch {sizes}"
        )


def is_recurrent(policy: nn.Module) -> bool:
    """A policy is recurrent if it says so (``recurrent = True``) or has an ``initial_state(batch)`` method."""
    return bool(getattr(policy, "recurrent", False)) or callable(getattr(policy, "initial_state", None))


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

    Args:
        path_or_run: run directory or checkpoint file.
        output: file to write (an existing directory gets ``policy.onnx`` inside); default
            ``<run-dir>/export/policy.onnx``, or ``<checkpoint>.onnx`` next to a checkpoint file.
        opset: ONNX opset; 18 needs no version conversion by the dynamo exporter.

    Returns:
        an :class:`ExportReport`; see :func:`export_policy_onnx`.

    Raises:
        FileNotFoundError, ValueError: no checkpoint, an unreadable one, a failed export or check.
        ImportError: onnx, onnxscript or onnxruntime is missing (one-line message).
    """
    _require_onnx()
    policy, cfg, state = load_policy(path_or_run)
    spaces = state["spaces"]
    target = _output_path(path_or_run, state["path"], output, ".onnx")
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
        policy, tuple(spaces["obs_shape"]), target, opset=opset, obs_dtype=spaces.get("obs_dtype"), metadata=metadata
    )


def export_policy_onnx(
    policy: nn.Module,
    obs_shape: tuple[int, ...],
    output: str | os.PathLike[str],
    opset: int = DEFAULT_OPSET,
    obs_dtype: str | None = None,
    metadata: dict[str, str] | None = None,
) -> ExportReport:
    """Export ``policy`` to ``output`` and check it against torch with onnxruntime.

    Feed-forward policies (``policy(obs) -> (logits, values)``) get inputs ``observations`` and outputs
    ``logits, values``. Recurrent ones (:func:`is_recurrent`; ``policy(obs, (h, c)) -> (logits, values, (h, c))``
    and ``initial_state(batch) -> (h, c)``) also get inputs ``h_in, c_in`` and outputs ``h_out, c_out``.
    A policy whose ``dist`` is a :class:`~thrust_cli.learn.distributions.Gaussian` (its forward returns the mean in
    place of logits) outputs ``action, action_mean, values, log_std`` instead of ``logits, values``
    (:func:`output_names`). The file is written to a temporary name and renamed only after the check passes.

    Args:
        policy: the torch module (put in eval mode here).
        obs_shape: shape of one observation.
        output: the ``.onnx`` file to write.
        opset: ONNX opset.
        obs_dtype: the env's observation dtype, used only to draw realistic check inputs (integer dtypes draw
            integers in [0, 255]); the ONNX input is float32 whatever it is.
        metadata: extra ``metadata_props`` of the ONNX model (readable with onnxruntime's ``get_modelmeta()``).

    Returns:
        an :class:`ExportReport` with the largest difference over all outputs and checked batch sizes.

    Raises:
        ValueError: the exporter failed, or onnxruntime differs from torch by more than :data:`TOLERANCE`.

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
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".tmp_{output.name}")
    input_names = ["observations", "h_in", "c_in"] if recurrent else ["observations"]
    outputs = output_names(policy)
    wrapper = _Recurrent(policy) if recurrent else _FeedForward(policy)
    generator = torch.Generator().manual_seed(0)
    batch = torch.export.Dim("batch", min=1)
    # Trace at batch 3: a batch of 1 would be specialised to a constant by torch.export.
    sample = _sample_inputs(policy, obs_shape, obs_dtype, 3, recurrent, generator)
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
        for key, value in (metadata or {}).items():
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, str(tmp))
        onnx.checker.check_model(str(tmp))
        diff = max(
            _onnx_max_abs_diff(tmp, wrapper, _sample_inputs(policy, obs_shape, obs_dtype, b, recurrent, generator))
            for b in CHECK_BATCH_SIZES
        )
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"ONNX export of {type(policy).__name__} failed: {_root_cause(exc)}") from exc
    if not diff <= TOLERANCE:  # also catches NaN
        tmp.unlink(missing_ok=True)
        raise ValueError(
            f"ONNX check failed: onnxruntime differs from torch by {diff:.3g} (> {TOLERANCE:g}); nothing written"
        )
    os.replace(tmp, output)
    shapes = {name: list(shape) for name, shape in _io_shapes(onnx.load(str(output), load_external_data=False))}
    return ExportReport(
        path=output,
        opset=opset,
        recurrent=recurrent,
        max_abs_diff=diff,
        inputs={name: shapes[name] for name in input_names},
        outputs={name: shapes[name] for name in outputs},
    )


def _sample_inputs(
    policy: nn.Module,
    obs_shape: tuple[int, ...],
    obs_dtype: str | None,
    batch: int,
    recurrent: bool,
    generator: torch.Generator,
) -> list[torch.Tensor]:
    """Random float32 check inputs: observations (and a perturbed initial state for recurrent policies)."""
    dtype = np.dtype(obs_dtype or "float32")
    if dtype.kind in "biu":  # bool/int observations (e.g. uint8 pixels): integers in the dtype's range ∩ [0, 255]
        high = 2 if dtype.kind == "b" else min(int(np.iinfo(dtype).max), 255) + 1
        obs = torch.randint(0, high, (batch, *obs_shape), generator=generator).float()
    else:  # the checkpoint does not record the bounds of float observations
        obs = torch.randn((batch, *obs_shape), generator=generator)
    if not recurrent:
        return [obs]
    h, c = policy.initial_state(batch)  # type: ignore[operator]
    h = h.float() + 0.5 * torch.randn(h.shape, generator=generator)
    c = c.float() + 0.5 * torch.randn(c.shape, generator=generator)
    return [obs, h, c]


def _onnx_max_abs_diff(path: Path, wrapper: nn.Module, inputs: list[torch.Tensor]) -> float:
    """Largest difference between onnxruntime and torch over all outputs for ``inputs``: absolute for entries
    of magnitude up to 1, relative above (float32 rounding grows with the magnitude, e.g. values of -160)."""
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
        diff = max(diff, float(scaled.max(initial=0.0)))
    return diff


def _root_cause(exc: BaseException) -> str:
    """First line of the innermost cause: the exporter wraps the real error in several layers of advice."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


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

    The error raised on failure still carries the cause (see :func:`_root_cause`).
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
