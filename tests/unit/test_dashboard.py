"""The live dashboard: one snapshot shows every group of metrics, missing keys are tolerated, redraws are rate
limited, and a run's last metrics render to text and SVG."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from thrust_cli.run import dashboard
from thrust_cli.run.dashboard import Dashboard, fmt, seconds, snapshot, time_split

METRICS: dict[str, Any] = {
    "global_step": 250_000,
    "time_s": 12.5,
    "sps": 20_000.0,
    "episode_return": 212.5,
    "episode_length": 212.5,
    "explained_variance": 0.875,
    "policy_loss": -0.0123,
    "value_loss": 4.5,
    "entropy": 0.61,
    "approx_kl": 0.0042,
    "clipfrac": 0.083,
    "env/score": 7.0,
    "update": 61,
    "num_updates": 123,
    "time/env_s": 1.0,
    "time/inference_s": 2.0,
    "time/copy_s": 1.0,
    "time/learn_s": 6.0,
}


def test_snapshot_shows_progress_speed_time_split_losses_and_env_stats() -> None:
    text, svg = snapshot(METRICS, total_steps=500_000, title="cartpole")
    for expected in (
        "cartpole",
        "step 250,000 / 500,000",
        "(50.0%)",
        "update 61 / 123",
        "SPS 20,000",
        "elapsed 0:00:12",
        "remaining 0:00:12",  # 250,000 steps left at 20,000 SPS
        "policy loss",
        "-0.0123",
        "approx kl",
        "0.0042",
        "explained var",
        "0.875",
        "212.5",
        "env/score",
    ):
        assert expected in text, (expected, text)
    rows = {line.split()[1]: line.split()[2:5] for line in text.splitlines() if len(line.split()) > 4}
    assert rows["env"] == ["1", "s", "10%"] and rows["learn"] == ["6", "s", "60%"]
    assert rows["inference"] == ["2", "s", "20%"] and rows["copy"] == ["1", "s", "10%"]
    assert svg.startswith("<svg") and "SPS" in svg


def test_missing_keys_show_as_dashes_and_an_unsplit_rollout_time_is_shown() -> None:
    text, _ = snapshot({"global_step": 0, "time/rollout_s": 3.0, "time/learn_s": 1.0})
    assert "rollout" in text and "75%" in text and "25%" in text
    assert "SPS -" in text and "remaining -" in text
    text, _ = snapshot({})
    assert "step 0" in text


def test_the_split_phases_replace_the_rollout_total() -> None:
    parts = time_split({"time/rollout_s": 9.0, "time/env_s": 1.0, "time/learn_s": 2.0, "time_s": 99.0})
    assert parts == [("env", 1.0), ("learn", 2.0)]


@pytest.mark.parametrize(
    "value,expected",
    [(None, "-"), (0, "0"), (123456.7, "123,457"), (2048, "2,048"), (0.5, "0.5"), (1.5e-5, "1.50e-05")],
)
def test_fmt_keeps_numbers_short(value: Any, expected: str) -> None:
    assert fmt(value) == expected


def test_seconds_pick_a_unit() -> None:
    assert [seconds(v) for v in (5e-4, 0.0248, 1.25, 312.4)] == ["500 µs", "24.8 ms", "1.25 s", "312 s"]


def test_redraws_are_limited_and_the_last_metrics_are_drawn_on_close(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[int] = []

    def fake_render(metrics: dict[str, Any], total: Any, title: str) -> str:
        drawn.append(metrics["global_step"])
        return ""

    monkeypatch.setattr(dashboard, "render", fake_render)
    live = Dashboard(total_steps=100, stream=io.StringIO(), max_fps=4.0)
    for step in range(50):  # far faster than 4 per second
        live.update({"global_step": step})
    live.close()
    assert drawn[0] == 0 and drawn[-1] == 49 and len(drawn) <= 3


def test_main_writes_svg_and_text_of_a_runs_last_metrics(tmp_path: Path) -> None:
    lines = [{"global_step": 1024, "update": 1, "num_updates": 4}, METRICS | {"global_step": 2048, "update": 2}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    assert dashboard.main([str(tmp_path), "--svg", str(tmp_path / "d.svg"), "--text", str(tmp_path / "d.txt")]) == 0
    text = (tmp_path / "d.txt").read_text()
    assert "step 2,048 / 125,952" in text  # the last line: 1,024 steps an update (2,048 / 2) x 123 updates
    assert (tmp_path / "d.svg").read_text().startswith("<svg")


def test_main_without_metrics_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        dashboard.main([str(tmp_path)])
    assert info.value.code == 2


def test_snapshot_before_any_episode_and_past_the_planned_total_shows_dash_and_a_consistent_total() -> None:
    text, _ = snapshot(METRICS | {"episode_return": None, "global_step": 600_000}, total_steps=500_000)
    assert "None" not in text
    assert "step 600,000 / 600,000  (100.0%)" in text and "500,000" not in text
