"""A minimal TensorBoard event-file writer for scalars.

Importing ``tensorboard`` (protobuf) costs ~0.2 s and ``torch.utils.tensorboard`` ~0.35 s here, which is a
tenth of Thrust's whole time to solve CartPole. Scalar events are small enough to encode by hand: an event file
is a TFRecord stream (length, masked CRC-32C, payload, masked CRC-32C) of ``Event`` protobufs
(https://github.com/tensorflow/tensorboard/blob/master/tensorboard/compat/proto/event.proto). The tests read
the files back with TensorBoard's own ``EventAccumulator``.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

_CRC_TABLE: list[int] = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TFRecord uses."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    """Protobuf varint of an int64: a negative value is its 64-bit two's complement (10 bytes), as protobuf does."""
    if value < 0:
        value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire_type: int) -> bytes:
    return _varint((number << 3) | wire_type)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _field(number, 2) + _varint(len(payload)) + payload


def _event(
    wall_time: float,
    step: int,
    summary: bytes | None = None,
    file_version: str | None = None,
    session_start: bool = False,
) -> bytes:
    out = _field(1, 1) + struct.pack("<d", wall_time) + _field(2, 0) + _varint(step)
    if file_version is not None:
        out += _length_delimited(3, file_version.encode())
    if summary is not None:
        out += _length_delimited(5, summary)
    if session_start:
        out += _length_delimited(7, _field(1, 0) + _varint(1))  # SessionLog{status: START}
    return out


def _scalar_value(tag: str, value: float) -> bytes:
    # Summary.Value{tag = 1, simple_value = 2 (float)}
    return _length_delimited(1, tag.encode()) + _field(2, 5) + struct.pack("<f", value)


class ScalarWriter:
    """Append scalar summaries to ``<logdir>/events.out.tfevents.<time>.<host>``.

    Args:
        logdir: directory of the event file (created if missing).
        flush_secs: flush to disk at most this often (and on close).
        purge_step: on resume, TensorBoard drops the events of earlier files at this step and later (a
            ``SessionLog.START`` event, as ``SummaryWriter(purge_step=...)`` writes), so a series continues
            without the steps of a segment that was lost.
    """

    def __init__(self, logdir: str | os.PathLike[str], flush_secs: float = 5.0, purge_step: int | None = None) -> None:
        Path(logdir).mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self.path = Path(logdir) / name
        n = 0
        while self.path.exists():  # a second writer in the same second and process (e.g. a resume)
            n += 1
            self.path = Path(logdir) / f"{name}.{n}"
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        self._flush_secs = flush_secs
        self._last_flush = time.monotonic()
        self._write(_event(time.time(), 0, file_version="brain.Event:2"))
        if purge_step is not None:
            self._write(_event(time.time(), purge_step, session_start=True))

    def _write(self, record: bytes) -> None:
        header = struct.pack("<Q", len(record))
        self._file.write(header + struct.pack("<I", _masked_crc(header)) + record)
        self._file.write(struct.pack("<I", _masked_crc(record)))

    def add_scalars(self, values: dict[str, float], step: int) -> None:
        """Write every ``tag: value`` of ``values`` at ``step`` (one event)."""
        summary = b"".join(_length_delimited(1, _scalar_value(tag, float(v))) for tag, v in values.items())
        self._write(_event(time.time(), step, summary=summary))
        if time.monotonic() - self._last_flush > self._flush_secs:
            self.flush()

    def flush(self) -> None:
        """Write the buffered events to disk now."""
        self._file.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Flush and close the event file. Idempotent."""
        if not self._file.closed:
            self._file.flush()
            self._file.close()
