"""The ``logger`` group and RunLogger: backends chosen by config, each given the same metric dict, metrics.jsonl
always written, a missing optional package named by its extra in one line."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from thrust_cli.run import loggers
from thrust_cli.run import logging as run_logging
from thrust_cli.run.config import ConfigError, compose_config, resume_config, run_part
from thrust_cli.run.logging import RunLogger


class Recorder:
    def __init__(self, fail_on_close: bool = False) -> None:
        self.calls: list[tuple[dict[str, Any], int]] = []
        self.closed = False
        self.fail_on_close = fail_on_close

    def log(self, metrics: dict[str, Any], step: int) -> None:
        self.calls.append((metrics, step))

    def close(self) -> None:
        self.closed = True
        if self.fail_on_close:
            raise RuntimeError("backend failed to close")


@pytest.mark.parametrize(
    "overrides,backends",
    [
        ([], ["tensorboard"]),
        (["logger=wandb"], ["wandb"]),
        (["logger=neptune"], ["neptune"]),
        (["logger=none"], []),
        (["logger.backends=[tensorboard,wandb,neptune]"], ["tensorboard", "wandb", "neptune"]),
    ],
)
def test_logger_group_options_and_backend_lists_compose(
    overrides: list[str], backends: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    installed = {"wandb", "neptune"}  # as if every extra were installed
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name in installed else real(name))
    cfg = run_part(compose_config(overrides)).logger
    assert list(cfg.backends) == backends
    assert cfg.dashboard is True and cfg.wandb.mode == "offline" and cfg.neptune.mode == "offline"


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["logger=nope"], "unknown option logger=nope; allowed: neptune, none, tensorboard, wandb"),
        (["logger.backends=[tensorboard,mlflow]"], "logger.backends=['tensorboard', 'mlflow'] is invalid: must be"),
        (["logger.backends=[tensorboard,tensorboard]"], "logger.backends=['tensorboard', 'tensorboard'] is invalid"),
        (["logger.wandb.mode=loud"], "logger.wandb.mode='loud' is invalid: must be one of offline, online, disabled"),
        (["+logger.wandb.team=x"], "unknown key 'logger.wandb.team'; allowed keys in 'logger.wandb': project, entity"),
        (["logger.neptune.mode=online"], "logger.neptune.mode='online' is invalid: must be one of offline, async"),
        (["logger.dashboard=maybe"], "logger.dashboard='maybe' is invalid: expected bool"),
        (["train.tensorboard=false"], "unknown config key 'train.tensorboard'"),
    ],
)
def test_bad_logger_config_is_one_line_naming_the_key(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        compose_config(overrides)
    assert "\n" not in str(info.value) and str(info.value).startswith(expected), str(info.value)


@pytest.mark.parametrize("backend", ["wandb", "neptune"])
def test_a_missing_extra_is_named_at_startup(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == backend else real(name))
    with pytest.raises(ConfigError) as info:
        compose_config([f"logger={backend}"])
    assert str(info.value) == (
        f"logger.backends has {backend} but the {backend} package is not installed; "
        f"install it with: pip install 'thrust-rl[{backend}]'"
    )


def test_resume_keeps_the_logger_and_takes_key_overrides_but_not_a_new_preset(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(run_part(compose_config(["logger=none"]))))
    assert list(resume_config(tmp_path, []).logger.backends) == []
    assert list(resume_config(tmp_path, ["logger.backends=[tensorboard]"]).logger.backends) == ["tensorboard"]
    with pytest.raises(ConfigError, match="cannot change 'logger=wandb' when resuming"):
        resume_config(tmp_path, ["logger=wandb"])


def test_every_backend_gets_the_same_dict_and_metrics_jsonl_gets_it_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorders = [Recorder(), Recorder()]
    monkeypatch.setattr(run_logging, "make_backends", lambda *args: list(recorders))
    logger = RunLogger(tmp_path, total_steps=100, progress="none")
    sent = [{"global_step": 10, "sps": 5.0, "episode_return": None}, {"global_step": 20, "sps": 6.0}]
    for metrics in sent:
        logger.log(metrics)
    logger.close()
    for recorder in recorders:
        assert [(m, s) for m, s in recorder.calls] == [(sent[0], 10), (sent[1], 20)]
        assert recorder.closed
    assert [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == sent


def test_close_closes_every_backend_and_the_file_even_when_one_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorders = [Recorder(fail_on_close=True), Recorder()]
    monkeypatch.setattr(run_logging, "make_backends", lambda *args: list(recorders))
    logger = RunLogger(tmp_path, total_steps=100, progress="none")
    with pytest.raises(RuntimeError, match="backend failed to close"):
        logger.close()
    assert recorders[1].closed and logger._metrics.closed
    logger.close()  # a second close is a no-op


def test_no_backend_still_writes_metrics_jsonl_and_no_event_file(tmp_path: Path) -> None:
    cfg = run_part(compose_config(["logger=none"])).logger
    logger = RunLogger(tmp_path, total_steps=100, progress="none", logger=cfg)
    logger.log({"global_step": 1, "sps": 2.0})
    logger.close()
    assert (tmp_path / "metrics.jsonl").read_text().strip() == json.dumps({"global_step": 1, "sps": 2.0})
    assert not list(tmp_path.glob("events.out.tfevents.*"))


@pytest.mark.parametrize("dashboard", [True, False])
def test_rich_mode_shows_the_dashboard_unless_turned_off(
    dashboard: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = run_part(compose_config(["logger=none", f"logger.dashboard={str(dashboard).lower()}"])).logger
    stream = io.StringIO()
    logger = RunLogger(tmp_path, total_steps=100, progress="rich", logger=cfg, stream=stream)
    logger.log({"global_step": 50, "sps": 1000.0, "policy_loss": 0.25, "update": 1, "num_updates": 2})
    logger.close()
    assert ("policy loss" in stream.getvalue()) is dashboard


def test_auto_mode_off_a_terminal_prints_plain_lines(tmp_path: Path) -> None:
    stream = io.StringIO()  # not a TTY
    cfg = run_part(compose_config([])).logger
    logger = RunLogger(tmp_path, total_steps=100, progress="auto", logger=cfg, stream=stream)
    logger.log({"global_step": 50, "sps": 1000.0, "episode_return": 9.5, "time_s": 1.0})
    logger.close()
    assert stream.getvalue().startswith("step") and "return     9.50" in stream.getvalue()


def test_a_backend_that_fails_to_start_closes_those_started_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Recorder] = []

    def tensorboard(*args: Any) -> Recorder:
        started.append(Recorder())
        return started[-1]

    def wandb(*args: Any) -> Recorder:
        raise ConfigError("logger wandb (mode online) failed to start: No API key configured.")

    monkeypatch.setattr(loggers, "TensorBoardBackend", tensorboard)
    monkeypatch.setattr(loggers, "WandbBackend", wandb)
    cfg = run_part(compose_config(["logger.backends=[tensorboard,wandb]", "logger.wandb.mode=online"])).logger
    with pytest.raises(ConfigError, match="failed to start: No API key configured"):
        RunLogger(tmp_path, total_steps=100, progress="none", logger=cfg)
    assert len(started) == 1 and started[0].closed


def test_tool_errors_become_their_first_line_of_text() -> None:
    banner = ValueError("\n\x1b[95m\n----NeptuneMissingApiTokenException----\n\x1b[0m\nNo API token.\n\nMore help.")
    assert loggers.first_line(banner) == "No API token."
    assert loggers.first_line(RuntimeError("")) == "RuntimeError"


@pytest.mark.parametrize("mode", ["plain", "bar", "dashboard"])
def test_progress_shows_a_dash_not_none_before_any_episode_ends(mode: str, tmp_path: Path) -> None:
    cfg = run_part(compose_config(["logger=none", f"logger.dashboard={str(mode == 'dashboard').lower()}"])).logger
    stream = io.StringIO()
    progress = "plain" if mode == "plain" else "rich"
    logger = RunLogger(tmp_path, total_steps=100, progress=progress, logger=cfg, stream=stream)
    logger.log({"global_step": 50, "sps": 1000.0, "episode_return": None, "time_s": 1.0, "update": 1})
    logger.close()
    shown = stream.getvalue()
    assert "None" not in shown, shown
    assert {"plain": "return        -", "bar": "return -", "dashboard": "return"}[mode] in shown, shown


@pytest.mark.parametrize("mode", ["plain", "bar", "dashboard"])
def test_progress_total_grows_to_the_step_when_a_run_passes_its_planned_total(mode: str, tmp_path: Path) -> None:
    cfg = run_part(compose_config(["logger=none", f"logger.dashboard={str(mode == 'dashboard').lower()}"])).logger
    stream = io.StringIO()
    progress = "plain" if mode == "plain" else "rich"
    logger = RunLogger(tmp_path, total_steps=229_376, progress=progress, logger=cfg, stream=stream)
    logger.log({"global_step": 229_888, "sps": 1000.0, "episode_return": 1.0, "time_s": 1.0})
    logger.close()
    shown = stream.getvalue()
    assert "229,376" not in shown, shown
    assert {"plain": "229,888/229,888", "bar": "229888/229888", "dashboard": "229,888 / 229,888"}[mode] in shown


def test_resume_accepts_the_runs_own_group_restated_and_refuses_another(tmp_path: Path) -> None:
    """`resume=RUN env=pendulum` of a Pendulum run changes nothing, so it is not an error; env=cartpole is."""
    from omegaconf import OmegaConf

    (tmp_path / ".hydra").mkdir()
    saved = run_part(compose_config(["env=pendulum", "algo=vtrace"]))
    (tmp_path / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(saved))
    cfg = resume_config(tmp_path, ["env=pendulum", "algo=vtrace", "train.total_timesteps=999"])
    assert cfg.env.name == "pendulum" and cfg.algo.name == "vtrace" and cfg.train.total_timesteps == 999
    with pytest.raises(ConfigError, match="cannot change 'env=cartpole' when resuming"):
        resume_config(tmp_path, ["env=cartpole"])
