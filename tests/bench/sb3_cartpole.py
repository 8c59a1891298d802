"""Peer baseline: Stable-Baselines3 PPO with the rl-zoo CartPole-v1 settings, stopped like Thrust's target.

Run as a whole process (imports included): ``python tests/bench/sb3_cartpole.py --seed 1``. Stops once the mean
return of the last 20 finished episodes reaches 475 and prints one JSON line.
rl-zoo settings (hyperparams/ppo.yml, CartPole-v1): n_envs 8, n_steps 32, batch_size 256, gae_lambda 0.8,
gamma 0.98, n_epochs 20, ent_coef 0.0, learning_rate lin_1e-3, clip_range lin_0.2, n_timesteps 1e5.
"""

from __future__ import annotations

import argparse
import json
import time

START = time.perf_counter()

import numpy as np  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402


def linear(start: float):  # type: ignore[no-untyped-def]
    return lambda progress_remaining: progress_remaining * start


class StopAtTarget(BaseCallback):
    def __init__(self, target: float, window: int) -> None:
        super().__init__()
        self.target, self.window = target, window
        self.solved_at: int | None = None

    def _on_step(self) -> bool:
        episodes = [info["r"] for info in self.model.ep_info_buffer]
        if len(episodes) >= self.window and np.mean(episodes[-self.window :]) >= self.target:
            self.solved_at = self.num_timesteps
            return False
        return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    env = make_vec_env("CartPole-v1", n_envs=8, seed=args.seed)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate=linear(1e-3),
        clip_range=linear(0.2),
        seed=args.seed,
        device="cpu",
        verbose=0,
    )
    callback = StopAtTarget(475.0, 20)
    model.learn(100_000, callback=callback)
    print(
        json.dumps(
            {
                "seed": args.seed,
                "solved_at_step": callback.solved_at,
                "in_process_s": time.perf_counter() - START,
            }
        )
    )


if __name__ == "__main__":
    main()
