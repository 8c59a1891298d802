"""Thrust's own TensorBoard event writer, read back by TensorBoard's reader."""

from __future__ import annotations

from pathlib import Path

from thrust_cli.run.tbwriter import _varint


def test_varints_are_protobufs_int64_encoding() -> None:
    assert _varint(0) == b"\x00" and _varint(1) == b"\x01" and _varint(300) == b"\xac\x02"
    assert _varint(-1) == b"\xff" * 9 + b"\x01"  # two's complement, 10 bytes (was an endless loop)
    assert _varint(-(2**63)) == b"\x80" * 9 + b"\x01"


def test_scalars_at_any_step_read_back_in_tensorboard(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from thrust_cli.run.tbwriter import ScalarWriter

    writer = ScalarWriter(tmp_path)
    for step, value in [(-5, 1.5), (0, -2.0), (2**40, 3.25)]:
        writer.add_scalars({"loss": value}, step)
    writer.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(-5, 1.5), (0, -2.0), (2**40, 3.25)]
