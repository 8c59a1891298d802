"""Scores of two non-learning Asteroids policies, the bars `thrust train env=asteroids` must clear (issue 12).

    python tests/bench/asteroids_baselines.py --episodes 100 --seed 12345

``random``: uniform over the 10 actions. ``rotate-and-fire``: a scripted gunner that turns left and fires every
step it can (action 7, fire+left), the classic degenerate Asteroids strategy. Each episode runs in its own env
instance from the same seed ``thrust eval`` uses by default; the score is the game's (the return is score / 100).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from envs_cython.asteroids import Asteroids

FIRE_LEFT = 7


def baseline_scores(policy: str, episodes: int = 100, seed: int = 12345, max_steps: int = 4500) -> np.ndarray:
    """The game score of ``episodes`` episodes of ``policy`` ("random" or "rotate-and-fire"), one per env."""
    env = Asteroids(num_envs=episodes, seed=seed, max_steps=max_steps)
    rng = np.random.default_rng(seed)
    env.reset(seed)
    returns = np.zeros(episodes)
    finished = np.zeros(episodes, dtype=bool)
    try:
        while not finished.all():
            if policy == "random":
                actions = rng.integers(0, env.single_action_space.n, episodes)
            else:
                actions = np.full(episodes, FIRE_LEFT)
            env.step(actions.astype(env.actions.dtype))
            returns[~finished] += env.rewards[~finished]
            finished |= env.terminals | env.truncations
    finally:
        env.close()
    return np.round(returns * 100.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = {}
    for policy in ("random", "rotate-and-fire"):
        scores = baseline_scores(policy, args.episodes, args.seed)
        result[policy] = {"mean_score": float(scores.mean()), "std_score": float(scores.std())}
        if not args.json:
            print(f"{policy:16s} mean score {scores.mean():8.1f} ± {scores.std():6.1f} over {args.episodes} episodes")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
