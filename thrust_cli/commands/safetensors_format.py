"""safetensors export: the policy's ``state_dict`` under its own names, with JSON metadata describing the
architecture, spaces and tensor layout, enough to rebuild the policy without Thrust's config
(:func:`load_safetensors_policy`). Also the helpers the ONNX export shares (:mod:`thrust_cli.commands.export`).

safetensors is imported inside the functions; a missing package is reported in one line. See docs/export.md.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from thrust_cli.learn.distributions import Gaussian
from thrust_cli.learn.policies import LSTMPolicy, MLPPolicy
from thrust_cli.run.checkpoint import load_policy

FORMAT = "thrust-policy"
FORMAT_VERSION = "1"
SAFETENSORS_MISSING = "safetensors export needs safetensors: pip install 'thrust-rl[export]'"


def gaussian_head(policy: nn.Module) -> Gaussian | None:
    """The policy's Gaussian action distribution (Box actions), or None for a categorical head or none at all."""
    dist = getattr(policy, "dist", None)
    return dist if isinstance(dist, Gaussian) else None


def _output_path(
    path_or_run: str | os.PathLike[str], checkpoint: str, output: str | os.PathLike[str] | None, suffix: str
) -> Path:
    """The file one format writes.

    ``output`` naming an existing directory, or ending in '/', means ``policy<suffix>`` inside it (created if
    missing); any other ``output`` is the file itself, and must end in ``suffix``: a checkpoint, a script or any
    other file is never replaced by an export (an existing file with the suffix is, as a re-export replaces its
    own). Without ``output``: ``<run-dir>/export/policy<suffix>`` for a run directory, ``<checkpoint><suffix>``
    next to a checkpoint file.

    Raises:
        ValueError: an ``output`` file name without ``suffix``.
    """
    if output is not None:
        text = os.fspath(output)
        out = Path(text)
        if out.is_dir() or text.endswith(("/", os.sep)):
            return out / f"policy{suffix}"
        if out.suffix.lower() != suffix:
            raise ValueError(f"output '{text}' must end in {suffix}, or name a directory to write policy{suffix} in")
        return out
    if Path(path_or_run).is_dir():
        return Path(path_or_run) / "export" / f"policy{suffix}"
    return Path(checkpoint).with_suffix(suffix)


def _cannot_write(target: Path, reason: str) -> ValueError:
    return ValueError(f"cannot write '{target}': {reason}")


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc).splitlines()[0]


def _writable_tmp(target: Path) -> Path:
    """Create ``target``'s directory and return a temporary file name beside it, ``.tmp_<name>``, proven writable.

    Export writes the temporary file and renames it to ``target`` once complete, so a failed export leaves no
    partial file. Files are created with ``open()``: mode 0666 less the umask (0644 under umask 022).

    Raises:
        ValueError: ``cannot write '<target>': <reason>`` (one line), e.g. a parent that is a file.
    """
    for parent in target.parents:  # the nearest existing ancestor must be a directory
        if parent.exists():
            if not parent.is_dir():
                raise _cannot_write(target, f"'{parent}' is not a directory")
            break
    if target.is_dir():
        raise _cannot_write(target, "it is a directory")
    tmp = target.with_name(f".tmp_{target.name}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb"):
            pass
    except OSError as exc:
        raise _cannot_write(target, _reason(exc)) from None
    return tmp


def _replace(tmp: Path, target: Path) -> None:
    """Rename the finished ``tmp`` to ``target`` (atomic on POSIX); on failure remove ``tmp`` and raise one line."""
    try:
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _cannot_write(target, _reason(exc)) from None


def export_safetensors(path_or_run: str | os.PathLike[str], output: str | os.PathLike[str] | None = None) -> Path:
    """Write the policy of a run directory or checkpoint file as safetensors with self-describing metadata.

    Metadata values are JSON strings (safetensors metadata is ``str -> str``); see docs/export.md for the keys.
    The checkpoint records the observation shape and dtype but not the bounds: ``low``/``high`` are null.
    A Box action space records its bounds (null for an unbounded dimension) and the policy's ``squash``.

    Args:
        path_or_run: run directory or checkpoint file.
        output: file to write, or a directory (existing, or ending in '/') to write ``policy.safetensors`` in;
            default ``<run-dir>/export/policy.safetensors`` or ``<checkpoint>.safetensors``.

    Returns:
        the path written (mode 0666 less the umask).

    Raises:
        ValueError: an architecture without a documented safetensors layout (``mlp`` and ``lstm`` have one), or
            ``cannot write '<path>': <reason>``.
        ImportError: safetensors is missing (one-line message).
    """
    save = _require_safetensors().save
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
    # safetensors' save_file writes mode 0600; serialise here and write with open() (mode 0666 less the umask)
    data = save(tensors, metadata={key: json.dumps(value) for key, value in metadata.items()})
    tmp = _writable_tmp(target)
    try:
        tmp.write_bytes(data)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _cannot_write(target, _reason(exc)) from None
    _replace(tmp, target)
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


def _require_safetensors() -> Any:
    """Return the ``safetensors.torch`` module (``save``, ``load_file``, ``safe_open``)."""
    try:
        import safetensors.torch
    except ImportError:
        raise ImportError(SAFETENSORS_MISSING) from None
    return safetensors.torch
