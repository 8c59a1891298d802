"""Export a trained policy to ONNX (inference anywhere) and to safetensors (weights plus a self-describing header).

ONNX: one self-contained file (no ``.onnx.data`` sidecar), written by torch's dynamo exporter at opset 18 — the
opset its op library (onnxscript's torchlib) is written in, so no version conversion runs; onnxruntime has run
opset 18 since 1.14, onnxruntime-web included. Every export is checked: onnxruntime and torch run the same random
inputs at batch 1 and 7, and a difference above :data:`TOLERANCE` deletes the file and raises.

safetensors: the policy's ``state_dict`` under its own names, with JSON metadata describing the architecture,
spaces and tensor layout, enough to rebuild the policy without Thrust's config (:func:`load_safetensors_policy`).

Discrete policies export ``logits``; Gaussian (Box) policies export the deterministic env action (the clipped or
tanh-squashed mean, what ``thrust eval`` runs by default), the pre-squash mean and ``log_std``, from which a caller
can sample (:func:`output_names`).

onnx, onnxscript, onnxruntime and safetensors are imported inside the functions: ``import thrust_cli.export``
costs nothing extra, and a missing package is reported in one line. See docs/export.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
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

from .distributions import Gaussian
from .evaluate import load_policy
from .policies import LSTMPolicy, MLPPolicy

DEFAULT_OPSET = 18
TOLERANCE = 1e-4
CHECK_BATCH_SIZES = (1, 7)
FORMAT = "thrust-policy"
FORMAT_VERSION = "1"
ONNX_MISSING = "ONNX export needs onnx, onnxscript and onnxruntime: pip install 'thrust-rl[export]'"
SAFETENSORS_MISSING = "safetensors export needs safetensors: pip install 'thrust-rl[export]'"


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


def gaussian_head(policy: nn.Module) -> Gaussian | None:
    """The policy's Gaussian action distribution (Box actions), or None for a categorical head or none at all."""
    dist = getattr(policy, "dist", None)
    return dist if isinstance(dist, Gaussian) else None


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
    A policy whose ``dist`` is a :class:`~thrust_cli.distributions.Gaussian` (its forward returns the mean in
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


def export_safetensors(path_or_run: str | os.PathLike[str], output: str | os.PathLike[str] | None = None) -> Path:
    """Write the policy of a run directory or checkpoint file as safetensors with self-describing metadata.

    Metadata values are JSON strings (safetensors metadata is ``str -> str``); see docs/export.md for the keys.
    The checkpoint records the observation shape and dtype but not the bounds: ``low``/``high`` are null.
    A Box action space records its bounds (null for an unbounded dimension) and the policy's ``squash``.

    Args:
        path_or_run: run directory or checkpoint file.
        output: file to write; default ``<run-dir>/export/policy.safetensors`` or ``<checkpoint>.safetensors``.

    Returns:
        the path written.

    Raises:
        ValueError: an architecture without a documented safetensors layout (``mlp`` and ``lstm`` have one).
        ImportError: safetensors is missing (one-line message).
    """
    save_file = _require_safetensors().save_file
    policy, cfg, state = load_policy(path_or_run)
    spaces = state["spaces"]
    target = _output_path(path_or_run, state["path"], output, ".safetensors")
    tensors = {name: t.detach().cpu().contiguous() for name, t in policy.state_dict().items()}
    obs_dim = math.prod(spaces["obs_shape"])
    dist = gaussian_head(policy)
    head = "action_mean" if dist is not None else "logits"
    if cfg.policy.name == "lstm" and isinstance(policy, LSTMPolicy):
        description: dict[str, Any] = {
            "architecture": "lstm",
            "policy": {
                "obs_shape": list(spaces["obs_shape"]),
                "num_actions": int(spaces["num_actions"]),
                "hidden_size": int(policy.hidden_size),
                "num_codes": policy.num_codes,
            },
            "tensors": {
                name: f"{name} {list(t.shape)}: {_LSTM_ROLES.get(name) or _DIST_ROLES[name]}"
                for name, t in tensors.items()
            },
            "forward": (
                "x = one_hot(observations.reshape(batch, -1), num_codes).reshape(batch, -1) if num_codes else "
                "observations.reshape(batch, -1); e = relu(x @ encoder.0.weight.T + encoder.0.bias); "
                "gates = e @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + h @ lstm.weight_hh_l0.T + lstm.bias_hh_l0, "
                "split in 4 (i, f, g, o); c' = sigmoid(f) * c + sigmoid(i) * tanh(g); h' = sigmoid(o) * tanh(c'); "
                f"{head} = h' @ actor_head.weight.T + actor_head.bias; values = (h' @ critic_head.weight.T + "
                "critic_head.bias)[:, 0]; state (h, c) [batch, hidden_size] starts at zero and is zeroed where an "
                "episode ends"
            ),
        }
    elif cfg.policy.name == "mlp" and isinstance(policy, MLPPolicy):
        description = _mlp_description(cfg, obs_dim, int(spaces["num_actions"]), tensors, head)
    else:
        raise ValueError(f"safetensors export supports the mlp and lstm policies (got '{cfg.policy.name}')")
    if dist is not None:
        description["policy"]["squash"] = bool(dist.squash)
        description["forward"] += _gaussian_forward(dist)
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": description["architecture"],
        "policy": description["policy"],
        "observation_space": {
            "type": "Box",
            "shape": list(spaces["obs_shape"]),
            "dtype": str(spaces.get("obs_dtype", "float32")),
            "low": None,
            "high": None,
        },
        "action_space": _action_space(spaces),
        "observation_normalization": {"type": "none"},
        "tensors": description["tensors"],
        "forward": description["forward"],
        "source": {"checkpoint": Path(state["path"]).name, "global_step": int(state["global_step"])},
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(target), metadata={key: json.dumps(value) for key, value in metadata.items()})
    return target


_LSTM_ROLES = {
    "encoder.0.weight": "encoder Linear weight [hidden, in] (in = prod(obs_shape) * num_codes for one-hot codes)",
    "encoder.0.bias": "encoder Linear bias [hidden]",
    "lstm.weight_ih_l0": "LSTM input weights [4 * hidden, hidden], gate blocks in order i, f, g, o",
    "lstm.weight_hh_l0": "LSTM recurrent weights [4 * hidden, hidden], gate blocks i, f, g, o",
    "lstm.bias_ih_l0": "LSTM input bias [4 * hidden]",
    "lstm.bias_hh_l0": "LSTM recurrent bias [4 * hidden]",
    "actor_head.weight": "policy head weight [num_actions, hidden]",
    "actor_head.bias": "policy head bias [num_actions]",
    "critic_head.weight": "value head weight [1, hidden]",
    "critic_head.bias": "value head bias [1]",
}


_DIST_ROLES = {
    "dist.log_std": (
        "log standard deviation of the Gaussian action distribution [num_actions], one per action dimension and "
        "independent of the observation: a sample is u = action_mean + exp(dist.log_std) * noise, noise ~ N(0, 1), "
        "before the clip or tanh squash into the bounds (see forward)"
    ),
}


def _action_space(spaces: dict[str, Any]) -> dict[str, Any]:
    """``{"type": "Discrete", "n"}`` or ``{"type": "Box", "shape", "low", "high"}`` (null bounds: unbounded;
    JSON has no infinity)."""
    action = spaces.get("action", {"type": "Discrete"})
    if action["type"] != "Box":
        return {"type": "Discrete", "n": int(spaces["num_actions"])}

    def finite(bounds: list[float]) -> list[float | None]:
        return [float(x) if math.isfinite(x) else None for x in bounds]

    return {
        "type": "Box",
        "shape": [int(spaces["num_actions"])],
        "low": finite(action["low"]),
        "high": finite(action["high"]),
    }


def _gaussian_forward(dist: Gaussian) -> str:
    """How the Gaussian head's ``action_mean`` becomes an env action (appended to the ``forward`` metadata)."""
    mapping = "low + (tanh(u) + 1) / 2 * (high - low)" if dist.squash else "clip(u, low, high)"
    return (
        f"; env action = {mapping} with low, high from action_space: deterministic (what thrust eval runs by "
        "default) at u = action_mean; sampled at u = action_mean + exp(dist.log_std) * noise, noise ~ N(0, 1) "
        "[batch, num_actions]"
    )


def _mlp_description(
    cfg: Any, obs_dim: int, num_actions: int, tensors: dict[str, torch.Tensor], head: str = "logits"
) -> dict[str, Any]:
    hidden, layers = int(cfg.policy.hidden_size), int(cfg.policy.num_layers)
    return {
        "architecture": "mlp",
        "policy": {
            "obs_dim": obs_dim,
            "num_actions": num_actions,
            "hidden_size": hidden,
            "num_layers": layers,
            "layer_sizes": [obs_dim] + [hidden] * layers,
            "activation": str(cfg.policy.activation),
            "shared": bool(cfg.policy.shared),
        },
        "tensors": _mlp_tensor_layout(tensors),
        "forward": (
            "x = observations.reshape(batch, -1).float(); the trunk (see tensors: one shared MLP trunk.{2k}.*, "
            "or a stacked pair trunk.weights.k/trunk.biases.k, copy 0 actor and copy 1 critic) maps x to "
            "actor_hidden and critic_hidden [batch, hidden] (the same tensor when shared; x itself when num_layers "
            f"is 0); {head} = actor_hidden @ actor_head.weight.T + "
            "actor_head.bias; values = (critic_hidden @ critic_head.weight.T + critic_head.bias)[:, 0]"
        ),
    }


def read_safetensors_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the metadata of a Thrust safetensors file with every JSON value decoded."""
    safe_open = _require_safetensors().safe_open
    with safe_open(str(path), framework="pt") as f:
        raw: dict[str, str] = f.metadata() or {}
    try:
        return {key: json.loads(value) for key, value in raw.items()}
    except json.JSONDecodeError as exc:
        raise ValueError(f"'{path}' is not a Thrust policy file (metadata is not JSON: {exc})") from None


def load_safetensors_policy(path: str | os.PathLike[str]) -> nn.Module:
    """Rebuild a policy from a file written by :func:`export_safetensors`, from its metadata alone (eval mode).

    Raises:
        ValueError: not a Thrust policy file, an unknown format version or architecture, or tensors that do not
            fit the described architecture.
    """
    meta = read_safetensors_metadata(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"'{path}' is not a Thrust policy file (metadata 'format' is {meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"'{path}' has format_version {meta.get('format_version')!r}; supported: {FORMAT_VERSION}")
    p = meta["policy"]
    dist = _gaussian_from_metadata(path, meta.get("action_space") or {"type": "Discrete"}, p)
    policy: nn.Module
    if meta.get("architecture") == "mlp":
        policy = MLPPolicy(
            p["obs_dim"], p["num_actions"], p["hidden_size"], p["num_layers"], p["activation"], p["shared"], dist
        )
    elif meta.get("architecture") == "lstm":
        policy = LSTMPolicy(tuple(p["obs_shape"]), p["num_actions"], p["hidden_size"], p["num_codes"], dist)
    else:
        raise ValueError(f"'{path}' has architecture {meta.get('architecture')!r}; supported: mlp, lstm")
    try:
        policy.load_state_dict(_require_safetensors().load_file(str(path)))
    except RuntimeError as exc:
        raise ValueError(f"'{path}': tensors do not match the metadata: {str(exc).splitlines()[0]}") from None
    return policy.eval()


def _gaussian_from_metadata(
    path: str | os.PathLike[str], action_space: dict[str, Any], policy: dict[str, Any]
) -> Gaussian | None:
    """The Gaussian head described by a Box ``action_space`` (None for Discrete); its ``log_std`` is a tensor."""
    if action_space.get("type") == "Discrete":
        return None
    if action_space.get("type") != "Box":
        raise ValueError(f"'{path}' has action_space type {action_space.get('type')!r}; supported: Discrete, Box")
    low = [-math.inf if x is None else float(x) for x in action_space["low"]]
    high = [math.inf if x is None else float(x) for x in action_space["high"]]
    try:
        return Gaussian(int(policy["num_actions"]), low, high, squash=bool(policy.get("squash", False)))
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"'{path}': action_space does not fit the policy: {str(exc).splitlines()[0]}") from None


def _mlp_tensor_layout(tensors: dict[str, torch.Tensor]) -> dict[str, str]:
    """Describe each tensor of an MLPPolicy: role, shape and how it is applied."""
    layout = {}
    for name, t in tensors.items():
        shape = list(t.shape)
        if name.startswith("trunk.weights."):
            role = (
                f"StackedMLP layer {name.rsplit('.', 1)[1]} weight {shape} = [copies, in, out]; copy 0 = actor, "
                "copy 1 = critic; h = act(h @ W[k] + b[k]) (no transpose)"
            )
        elif name.startswith("trunk.biases."):
            role = f"StackedMLP layer {name.rsplit('.', 1)[1]} bias {shape} = [copies, 1, out]; copy 0 actor, 1 critic"
        elif name in _DIST_ROLES:
            role = f"{name} {shape}: {_DIST_ROLES[name]}"
        elif name.startswith("trunk."):
            index = int(name.split(".")[1]) // 2  # nn.Sequential interleaves Linear and activation modules
            kind = "weight" if name.endswith("weight") else "bias"
            role = f"shared trunk layer {index} {kind} {shape} (torch Linear: [out, in]; h = act(h @ W.T + b))"
        else:
            role = f"{name} {shape} (torch Linear: weight [out, in], y = x @ W.T + b)"
        layout[name] = role
    return layout


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


def _output_path(
    path_or_run: str | os.PathLike[str], checkpoint: str, output: str | os.PathLike[str] | None, suffix: str
) -> Path:
    if output is not None:
        out = Path(output)
        return out / f"policy{suffix}" if out.is_dir() else out
    if Path(path_or_run).is_dir():
        return Path(path_or_run) / "export" / f"policy{suffix}"
    return Path(checkpoint).with_suffix(suffix)


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


def _require_safetensors() -> Any:
    """Return the ``safetensors.torch`` module (``save_file``, ``load_file``, ``safe_open``)."""
    try:
        import safetensors.torch
    except ImportError:
        raise ImportError(SAFETENSORS_MISSING) from None
    return safetensors.torch
