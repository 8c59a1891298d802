"""Config composition and validation: every bad input gives one line naming the key and what is allowed."""

from __future__ import annotations

import pytest

from thrust_cli.run.config import ConfigError, compose_config, run_part


def test_defaults_compose_and_lr_override_is_top_level() -> None:
    cfg = run_part(compose_config(["lr=1e-3"]))
    assert cfg.lr == 1e-3
    assert cfg.env.name == "cartpole"
    assert cfg.policy.name == "mlp" and cfg.algo.name == "ppo" and cfg.vec.name == "serial"


def test_every_hydra_override_form_is_accepted() -> None:
    cfg = run_part(
        compose_config(
            [
                "env=gym",
                "env.id=Acrobot-v1",
                "+env.kwargs.render_mode=null",
                "++seed=3",
                "algo.vf_clip_coef=null",
                "policy=mlp",
            ]
        )
    )
    assert cfg.env.id == "Acrobot-v1" and cfg.seed == 3 and cfg.algo.vf_clip_coef is None
    assert "render_mode" in cfg.env.kwargs


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["lr=-1"], "lr=-1.0 is invalid: must be > 0"),
        (["env.num_envs=0"], "env.num_envs=0 is invalid: must be > 0"),
        (
            ["env=nope"],
            "unknown option env=nope; allowed: asteroids, busy, cartpole, custom, gym, memory, pendulum, snake",
        ),
        (["policy=nope"], "unknown option policy=nope; allowed: lstm, mlp"),
        (["train.nope=1"], "unknown config key 'train.nope'; allowed keys in 'train': total_timesteps"),
        (["+algo.nope=1"], "unknown key 'algo.nope'; allowed keys in 'algo': name, num_steps"),
        (["lr=fast"], "lr='fast' is invalid: expected float"),
        (["env.num_envs=1.5"], "env.num_envs=1.5 is invalid: expected int"),
        (["algo.gamma=1.5"], "algo.gamma=1.5 is invalid: must be in [0.0, 1.0]"),
        (["train.progress=loud"], "train.progress='loud' is invalid: must be one of auto, rich, plain, none"),
        (["lr=1=2"], "invalid override 'lr=1=2'"),
        (["vec=multiprocessing", "vec.num_workers=3"], "env.num_envs=32 must be a multiple of vec.num_workers=3"),
        (["vec=multiprocessing", "vec.num_workers=2", "vec.batch_size=10"], "vec.batch_size=10 is invalid"),
        (["vec=multiprocessing", "vec.num_workers=0"], "vec.num_workers=0 is invalid: must be 'auto' or an int"),
        (["vec=nope"], "unknown option vec=nope; allowed: multiprocessing, serial"),
    ],
)
def test_bad_input_is_one_line_naming_key_and_allowed(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        compose_config(overrides)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(expected), message
