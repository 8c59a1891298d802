"""merge_logs: the episode-weighted mean of several envs' logs, as the vectorizers report them."""

from __future__ import annotations

import pytest

from thrust_cli.vector.serial import merge_logs


def test_each_key_is_weighted_by_the_episodes_of_the_logs_that_have_it() -> None:
    merged = merge_logs([{"n": 2.0, "episode_return": 10.0, "score": 1.0}, {"n": 6.0, "episode_return": 2.0}])
    assert merged["n"] == 8.0
    assert merged["episode_return"] == pytest.approx((2 * 10 + 6 * 2) / 8)
    assert merged["score"] == 1.0  # only the first log has it: not diluted by the second log's episodes


def test_logs_without_episodes_are_left_out() -> None:
    assert merge_logs([{"n": 0.0, "episode_return": 99.0}]) == {}
    assert merge_logs([{"n": 0.0, "episode_return": 99.0}, {"n": 1.0, "episode_return": 3.0}]) == {
        "episode_return": 3.0,
        "n": 1.0,
    }
