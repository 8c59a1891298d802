"""Advantage estimators on a GPU: the fused Triton kernels vs the torch loop on CUDA vs the C kernel on the CPU.

    python tests/bench/advantage_gpu.py                      # T=128 N=4096 and T=64 N=32768, prints a table
    python tests/bench/advantage_gpu.py --shapes 256x1024 --repeats 200 --json
    TRITON_INTERPRET=1 python tests/bench/advantage_gpu.py --device cpu --shapes 8x16 --repeats 2   # the script

Each figure is the median wall time of one call in ms (after warm-up calls, which include Triton's compile),
with ``torch.cuda.synchronize()`` before the clock starts and before it stops, so launches and the kernel are
both counted. The data is a rollout buffer's view ``buf.X.T`` ([N, T], time-major memory), as training passes
it; the C kernel reads the same layout from host memory. Without CUDA (or triton) it refuses in one line and
exits 2. ``--device cpu`` with ``TRITON_INTERPRET=1`` runs the same code through Triton's interpreter, to check the
script without a GPU (its times mean nothing). Figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from thrust_cli.commands.bench import median_ms
from thrust_cli.learn import advantage

PARAMS = {"gae": (0.99, 0.95), "vtrace": (0.99, 0.95, 1.0, 1.0, 1.0)}


def rollout(T: int, N: int, device: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random [T, N] buffers with ~2% episode ends (half of them truncations), returned as [N, T] views."""
    gen = torch.Generator().manual_seed(seed)
    dones = torch.rand(T, N, generator=gen) < 0.02
    behavior = -torch.rand(T, N, generator=gen)
    data = {
        "rewards": torch.randn(T, N, generator=gen),
        "values": torch.randn(T, N, generator=gen),
        "next_values": torch.randn(T, N, generator=gen),
        "terminals": dones & (torch.rand(T, N, generator=gen) < 0.5),
        "dones": dones,
        "behavior_logprob": behavior,
        "target_logprob": behavior + 0.1 * torch.randn(T, N, generator=gen),
    }
    return {k: x.to(device).T for k, x in data.items()}


def measure(T: int, N: int, repeats: int, device: str = "cuda") -> list[dict[str, object]]:
    gpu, cpu = rollout(T, N, device), rollout(T, N, "cpu")
    sync = torch.cuda.synchronize if device == "cuda" else None
    gae_keys = ["rewards", "values", "next_values", "terminals", "dones"]
    keys = {"gae": gae_keys, "vtrace": [*gae_keys, "behavior_logprob", "target_logprob"]}
    impls = {
        "gae": (advantage.gae_triton, advantage.gae_torch, advantage.gae),
        "vtrace": (advantage.vtrace_triton, advantage.vtrace_torch, advantage.vtrace),
    }
    rows = []
    with torch.no_grad():
        for name, (triton_fn, torch_fn, c_fn) in impls.items():
            g, c, p = [gpu[k] for k in keys[name]], [cpu[k] for k in keys[name]], PARAMS[name]
            ms = {
                "triton": median_ms(lambda f=triton_fn, g=g, p=p: f(*g, *p), repeats, sync, warmup=3),
                "torch_loop": median_ms(lambda f=torch_fn, g=g, p=p: f(*g, *p), repeats, sync, warmup=3),
                "c_cpu": median_ms(lambda f=c_fn, c=c, p=p: f(*c, *p), max(5, repeats // 5), warmup=3),
            }
            pairs = zip(triton_fn(*g, *p), c_fn(*c, *p), strict=True)
            error = max((a.cpu() - b).abs().max().item() for a, b in pairs)
            rows.append({"estimator": name, "T": T, "N": N, **ms, "max_abs_diff_vs_c": error})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["128x4096", "64x32768"], help="TxN rollout shapes")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu: needs TRITON_INTERPRET=1")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("advantage_gpu.py: needs a CUDA GPU (torch.cuda.is_available() is False); nothing timed")
        sys.exit(2)
    if args.device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        print("advantage_gpu.py: --device cpu runs Triton's interpreter: set TRITON_INTERPRET=1; nothing timed")
        sys.exit(2)
    if advantage._triton_kernels() is None:
        print("advantage_gpu.py: needs triton (CUDA builds of torch ship it); nothing timed")
        sys.exit(2)
    rows = []
    for shape in args.shapes:
        T, N = (int(v) for v in shape.lower().split("x"))
        rows += measure(T, N, args.repeats, args.device)
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu (Triton interpreter)"
    if args.json:
        print(json.dumps({"device": name, "rows": rows}))
        return
    card = f"{name}, torch {torch.__version__}"
    print(f"advantage ms per call, median of {args.repeats} ({card})")
    print(f"{'estimator':<8} {'T':>5} {'N':>7} {'triton':>9} {'torch loop':>11} {'C (CPU)':>9} {'loop/triton':>12}")
    for r in rows:
        speedup = r["torch_loop"] / r["triton"]  # type: ignore[operator]
        print(
            f"{r['estimator']:<8} {r['T']:>5} {r['N']:>7} {r['triton']:>9.3f} {r['torch_loop']:>11.3f} "
            f"{r['c_cpu']:>9.3f} {speedup:>11.1f}x   (max |triton - C| {r['max_abs_diff_vs_c']:.1e})"
        )


if __name__ == "__main__":
    main()
