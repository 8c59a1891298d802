"""`thrust sweep --hpo`: an Optuna study of full runs; a failed trial is recorded and the study goes on."""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from typer.testing import CliRunner

from thrust_cli.cli import app
from thrust_cli.commands.hpo import MISSING_OPTUNA, base_overrides, format_override, import_optuna, load_hpo
from thrust_cli.run.config import ConfigError

# trial 0 is enqueued with lr=-1, which `thrust train` rejects: a deliberately failing trial
TINY = """
objective: mean_return_last_100
direction: maximize
n_trials: 8
sampler: tpe
seed: 0
fixed: [env=cartpole, train.total_timesteps=2048, env.num_envs=8, algo.num_steps=32, logger=none]
params:
  lr: {type: categorical, choices: [1.0e-3, 5.0e-3, -1]}
  algo.update_epochs: {type: int, low: 1, high: 4}
  algo.gae_lambda: {type: float, low: 0.8, high: 0.99}
enqueue: [{lr: -1}]
"""


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text().splitlines()))


@pytest.mark.timeout(180)
def test_study_with_a_failing_trial_finishes_reports_the_best_config_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import optuna  # in the dev extra

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY)
    runner = CliRunner()
    result = runner.invoke(app, ["sweep", "--hpo", "tiny.yaml", "--dir", "first", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    sweep_dir = Path(result.stdout.strip().splitlines()[-1])
    assert sweep_dir == tmp_path / "first"

    rows = _csv(sweep_dir / "sweep_summary.csv")
    assert len(rows) == 8 and [int(r["trial"]) for r in rows] == list(range(8))
    assert list(rows[0]) == [
        "trial",
        "job",
        "overrides",
        "status",
        "objective",
        "sps",
        "steps",
        "seconds",
        "run_dir",
        "error",
    ]
    assert "lr=-1" in rows[0]["overrides"].split()
    assert rows[0]["status"] == "failed" and rows[0]["error"] == "lr=-1.0 is invalid: must be > 0"
    completed = [r for r in rows if r["status"] != "failed"]
    assert completed and all(int(r["steps"]) == 2048 and float(r["seconds"]) > 0 for r in completed)
    assert (Path(completed[0]["run_dir"]) / "summary.json").is_file()

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{sweep_dir / 'study.db'}")
    assert study.trials[0].state == optuna.trial.TrialState.FAIL
    assert {"steps", "seconds", "sps", "run_dir", "status", "error", "overrides"} <= set(study.trials[0].user_attrs)
    best = study.best_trial
    assert best.value == max(float(r["objective"]) for r in completed)
    best_overrides = OmegaConf.to_container(OmegaConf.load(sweep_dir / "best.yaml"))
    assert best_overrides == best.user_attrs["overrides"]
    assert best_overrides[:5] == OmegaConf.create(TINY).fixed[:5] and "lr=-1" not in best_overrides
    assert f"best trial {best.number}: mean_return_last_100 = {best.value:.6g}" in result.stderr
    assert f"study 'tiny': 8 trials ({8 - len(completed)} failed)" in result.stderr

    # a sweep killed mid-trial leaves trial 8 RUNNING; resuming marks it failed and counts it
    storage = f"sqlite:///{sweep_dir / 'study.db'}"
    optuna.load_study(study_name="tiny", storage=storage).ask()
    # the same storage and study name resume the study: --trials counts the 9 trials it holds
    args = ["sweep", "--hpo", "tiny.yaml", "--dir", "second", "--storage", storage, "--study-name", "tiny"]
    result = runner.invoke(app, [*args, "--trials", "11"])
    assert result.exit_code == 0, result.output
    assert "trial 8: marked failed (left running by an interrupted sweep)" in result.stderr
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    assert len(trials) == 11 and trials[8].state == optuna.trial.TrialState.FAIL
    rows = _csv(tmp_path / "second" / "sweep_summary.csv")
    assert [int(r["trial"]) for r in rows] == list(range(11))
    assert rows[8]["error"] == "no result: the sweep running it was interrupted"
    assert sorted(p.name for p in (tmp_path / "second").iterdir() if p.name.isdigit()) == ["10", "9"]


def test_hpo_file_errors_are_one_line_naming_the_key(tmp_path: Path) -> None:
    cases = {
        "colour: red": "unknown key 'colour'; allowed keys in the top level: objective, direction",
        "n_trials: many": "n_trials='many' is invalid: expected int",
        "direction: up": "direction='up' is invalid: must be one of maximize, minimize",
        "params: {lr: {type: beta, low: 0, high: 1}}": "params.lr.type='beta' is invalid; allowed: float, int",
        "params: {lr: {type: float, low: 0.1}}": "params.lr.high is missing",
        "params: {lr: {type: float, low: 0, high: 1, lo: 2}}": "unknown key 'params.lr.lo'",
        "params: {lr: {type: float, low: 0, high: 1, log: true}}": "params.lr: log=true needs low > 0",
        "params: {x: {type: int, low: 0.5, high: 3}}": "params.x.low=0.5 is invalid: expected int",
        "params: {x: {type: categorical, choices: []}}": "params.x.choices must be a non-empty list",
        "params: {x: {type: int, low: 1, high: 3}}\nenqueue: [{x: 9}]": "enqueue[0].x=9 is outside the distribution",
        "params: {lr: {type: float, low: 0.1, high: 1}}\nfixed: [lr=0.1]": "'lr' is both in params and in fixed",
    }
    for i, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"case{i}.yaml"
        path.write_text(text + ("" if "params" in text else "\nparams: {lr: {type: float, low: 0.1, high: 1}}"))
        with pytest.raises(ConfigError, match=r"^hpo case") as info:
            load_hpo(str(path))
        assert message in str(info.value) and "\n" not in str(info.value), (text, str(info.value))
    with pytest.raises(ConfigError, match="unknown hpo preset 'nope'; available: acrobot, cartpole"):
        load_hpo("nope")


def test_cli_rejects_unknown_keys_sweeps_and_hpo_options_without_hpo(tmp_path: Path) -> None:
    runner = CliRunner()
    spec = load_hpo("cartpole")
    assert base_overrides(spec, ["train.total_timesteps=2048"]) == ["env=cartpole", "train.total_timesteps=2048"]
    (tmp_path / "bad.yaml").write_text("params: {algo.nope: {type: int, low: 1, high: 2}}\n")
    cases = [
        (["--hpo", str(tmp_path / "bad.yaml")], "params.algo.nope: unknown config key 'algo.nope'"),
        (["--hpo", "cartpole", "seed=1,2"], "with --hpo give single values"),
        (["--hpo", "cartpole", "lr=1e-3"], "'lr' is searched by hpo cartpole"),
        (["--trials", "3", "lr=1e-3,3e-4"], "--trials needs --hpo"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["sweep", "--dir", str(tmp_path / "s"), *args])
        assert result.exit_code == 2 and message in result.stderr, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1


def test_overrides_are_written_in_hydra_grammar() -> None:
    assert format_override("lr", 1e-05) == "lr=1e-05"
    assert format_override("policy.activation", "relu") == "policy.activation=relu"
    assert format_override("algo.target_kl", None) == "algo.target_kl=null"
    assert format_override("logger.dashboard", False) == "logger.dashboard=false"
    assert format_override("env.id", "1e-3") == "env.id='1e-3'"


def test_missing_optuna_is_one_line_saying_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ImportError, match=f"^{re.escape(MISSING_OPTUNA)}$"):
        import_optuna()
    result = CliRunner().invoke(app, ["sweep", "--hpo", "cartpole"])
    assert result.exit_code == 2 and result.stderr.strip() == f"error: {MISSING_OPTUNA}"


@pytest.mark.timeout(120)
def test_a_trial_whose_dir_exists_already_reports_the_run_it_wrote(tmp_path: Path) -> None:
    from thrust_cli.commands.hpo import run_hpo

    (tmp_path / "one.yaml").write_text(
        "n_trials: 1\nfixed: [train.total_timesteps=2048, logger=none]\n"
        "params:\n  lr: {type: categorical, choices: [1.0e-3]}\n"
    )
    # trial 0 of another study in the same directory: `thrust train` makes this trial's run dir 0_1
    (tmp_path / "D" / "0").mkdir(parents=True)
    fake = {"status": "completed", "global_step": 999, "sps": 1.0, "mean_return_last_100": 1234.0}
    (tmp_path / "D" / "0" / "summary.json").write_text(json.dumps(fake))
    result = run_hpo(load_hpo(str(tmp_path / "one.yaml")), sweep_dir=tmp_path / "D")
    (row,) = result.rows
    assert row["run_dir"] == str(tmp_path / "D" / "0_1") and row["steps"] == 2048
    assert result.best_value is not None and result.best_value != 1234.0
