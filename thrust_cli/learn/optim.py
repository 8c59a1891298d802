"""Adam without ``torch.optim``.

Constructing any ``torch.optim`` optimizer imports ``torch._dynamo`` (about 1 s on this machine with torch 2.13),
a third of Thrust's whole time to solve CartPole. This is the same update as ``torch.optim.Adam`` with
``amsgrad=False, weight_decay=0`` (Kingma & Ba 2015, with torch's bias-correction arithmetic), in foreach ops;
``tests/unit/test_optim.py`` checks it against ``torch.optim.Adam`` step by step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch


class Adam:
    """Adam over a fixed list of parameters, with ``param_groups[0]["lr"]`` settable like torch's.

    Args:
        params: parameters to optimize.
        lr: learning rate.
        betas: coefficients of the running averages of the gradient and its square.
        eps: added to the denominator (PPO uses 1e-5, CleanRL detail #3).
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params: list[torch.Tensor] = [p for p in params if p.requires_grad]
        self.param_groups: list[dict[str, Any]] = [{"lr": lr, "betas": betas, "eps": eps}]
        self.step_count = 0
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of the parameters.

        Args:
            set_to_none: set each ``p.grad`` to None (as torch does by default); else zero the existing tensors.
        """
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of the parameters that have a gradient; nothing when none has one.

        The step count (bias correction) is shared by all parameters and advances once per call that updates any.
        """
        group = self.param_groups[0]
        lr: float = group["lr"]
        beta1: float = group["betas"][0]
        beta2: float = group["betas"][1]
        eps: float = group["eps"]
        index = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not index:
            return
        params = [self.params[i] for i in index]
        grads = [p.grad for p in params if p.grad is not None]
        exp_avg = [self.exp_avg[i] for i in index]
        exp_avg_sq = [self.exp_avg_sq[i] for i in index]
        self.step_count += 1
        torch._foreach_lerp_(exp_avg, grads, 1.0 - beta1)
        torch._foreach_mul_(exp_avg_sq, beta2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, 1.0 - beta2)
        bias_correction1 = 1.0 - beta1**self.step_count
        bias_correction2_sqrt = math.sqrt(1.0 - beta2**self.step_count)
        denom = torch._foreach_sqrt(exp_avg_sq)
        torch._foreach_div_(denom, bias_correction2_sqrt)
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(params, exp_avg, denom, -lr / bias_correction1)

    def state_dict(self) -> dict[str, Any]:
        """A copy of the optimizer state: ``step``, ``param_groups`` (lr, betas, eps) and the moment estimates
        ``exp_avg`` and ``exp_avg_sq`` (one tensor per parameter, in parameter order)."""
        return {
            "step": self.step_count,
            "param_groups": [dict(self.param_groups[0])],
            "exp_avg": [t.clone() for t in self.exp_avg],
            "exp_avg_sq": [t.clone() for t in self.exp_avg_sq],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict` (copied into the existing tensors; ``lr``, betas and eps are taken from it).

        Args:
            state: what `state_dict` returned, for the same list of parameters.

        Raises:
            ValueError: it holds a different number of parameters.
        """
        if len(state["exp_avg"]) != len(self.params):
            raise ValueError(f"optimizer state holds {len(state['exp_avg'])} tensors, the policy {len(self.params)}")
        self.step_count = int(state["step"])
        self.param_groups[0].update(state["param_groups"][0])
        for dst, src in zip(self.exp_avg + self.exp_avg_sq, state["exp_avg"] + state["exp_avg_sq"], strict=True):
            dst.copy_(src)


class LossScaler:
    """Dynamic loss scaling for float16 autocast (what ``torch.amp.GradScaler`` does, for :class:`Adam`).

    The loss is multiplied by ``scale`` before ``backward`` so that small float16 gradients do not flush to zero;
    :meth:`unscale` divides the gradients back and reports whether they are finite. An overflow halves the scale
    (the step is skipped); ``growth_interval`` finite steps in a row double it.
    """

    def __init__(self, scale: float = 2.0**16, growth_interval: int = 2000) -> None:
        self.scale = scale
        self.growth_interval = growth_interval
        self.good_steps = 0
        self.skipped = 0

    @torch.no_grad()
    def unscale(self, params: list[torch.Tensor]) -> bool:
        """Divide every gradient by the scale; False (and the scale halved) if any is inf or NaN."""
        grads = [p.grad for p in params if p.grad is not None]
        # one host read for all gradients (not one per parameter: each read waits for the device)
        finite = not grads or bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())
        if not finite:
            self.scale /= 2.0
            self.good_steps = 0
            self.skipped += 1
            return False
        if grads:
            torch._foreach_mul_(grads, 1.0 / self.scale)
        self.good_steps += 1
        if self.good_steps >= self.growth_interval:
            self.scale *= 2.0
            self.good_steps = 0
        return True
