"""``train.compile=true``: torch.compile of the policy's forward passes and of the PPO loss, with the first-call cost.

The policy is compiled in place by replacing its forward methods on the instance (``forward``, and for the LSTM
``forward_sequence``), so its parameters, ``state_dict`` keys, checkpoints and exports are those of the eager
module. The first call of each compiled function traces and compiles it; :class:`FirstCallTimer` records that
call's wall time, which ``thrust train`` reports as ``compile_first_call_s`` in summary.json and as
``time/compile_s`` (their sum) in the metrics. Later shapes (the rollout's batch, then the minibatch) recompile
once with dynamic shapes; those calls are timed too and added to the same figure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch


class FirstCallTimer:
    """Wrap a compiled function and add the wall time of its compiling calls to ``times[name]``.

    A call counts as compiling while torch.compile's frame counter moves during it (the first call, and a call
    with a new shape that recompiles); ordinary calls cost one counter read.

    Args:
        fn: the compiled callable.
        name: its key in ``times``.
        times: shared dict of seconds per name, read by the trainer.
    """

    def __init__(self, fn: Callable[..., Any], name: str, times: dict[str, float]) -> None:
        self.fn, self.name, self.times = fn, name, times
        times.setdefault(name, 0.0)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the compiled function; time the call if it compiled."""
        before = _compiles()
        start = time.perf_counter()
        out = self.fn(*args, **kwargs)
        if _compiles() != before:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.times[self.name] += time.perf_counter() - start
        return out


def _compiles() -> int:
    """Frames torch.compile has compiled in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


#: torch.compile's backend for ``train.compile`` (tests switch to ``aot_eager``, which traces the same graphs
#: without generating code)
BACKEND = "inductor"


def compile_policy(policy: torch.nn.Module, times: dict[str, float], backend: str | None = None) -> None:
    """Compile the policy's forward passes in place (the module and its parameters stay the same objects).

    Args:
        policy: an :class:`~thrust_cli.learn.policies.MLPPolicy` or :class:`~thrust_cli.learn.policies.LSTMPolicy`.
        times: where the compiling calls' seconds go (``policy.forward``, ``policy.forward_sequence``).
        backend: torch.compile's backend (None: :data:`BACKEND`).
    """
    for name in ("forward", "forward_sequence"):
        method = getattr(policy, name, None)
        if method is not None:
            compiled = torch.compile(method, backend=backend or BACKEND)
            setattr(policy, name, FirstCallTimer(compiled, f"policy.{name}", times))


def compile_loss(
    loss_fn: Callable[..., Any], times: dict[str, float], backend: str | None = None
) -> Callable[..., Any]:
    """The compiled loss function, timed like the policy (``times['loss']``); arguments as :func:`compile_policy`."""
    return FirstCallTimer(torch.compile(loss_fn, backend=backend or BACKEND), "loss", times)
