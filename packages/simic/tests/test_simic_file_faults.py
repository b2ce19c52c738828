"""Files under faults: flipped checkpoint bytes are detected, foreign pickles are refused without advice to lift
the restriction, atomic writes respect the umask, and a killed writer's temporary files are cleaned up."""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from esper.leyline import CheckpointError
from esper.simic.atomic_files import remove_stale_temporaries, torch_save_atomic, write_text_atomic
from esper.simic.checkpoints import TrainingCheckpoint, load_checkpoint, save_checkpoint


def _checkpoint() -> TrainingCheckpoint:
    generator = torch.Generator().manual_seed(0)
    return TrainingCheckpoint(
        rounds_completed=3,
        policy_state={"weight": torch.randn(64, generator=generator)},
        policy_build_config={"kind": "lstm"},
        updater_state={"rounds": 3},
        rng={},
        config={"task": "digits"},
    )


def _same(a: TrainingCheckpoint, b: TrainingCheckpoint) -> bool:
    return torch.equal(a.policy_state["weight"], b.policy_state["weight"]) and (
        a.rounds_completed,
        a.policy_build_config,
        a.updater_state,
        a.rng,
        a.config,
    ) == (b.rounds_completed, b.policy_build_config, b.updater_state, b.rng, b.config)


def test_a_flipped_byte_never_loads_silently(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    original = _checkpoint()
    save_checkpoint(good, original)
    data = good.read_bytes()
    damaged = tmp_path / "damaged.pt"
    detected = 0
    for position in range(0, len(data), 3):
        flipped = bytearray(data)
        flipped[position] ^= 0x04
        damaged.write_bytes(bytes(flipped))
        try:
            loaded = load_checkpoint(damaged)
        except CheckpointError as error:
            assert "weights_only" not in str(error) and "\n" not in str(error)
            detected += 1
            continue
        assert _same(loaded, original), f"a flip at byte {position} changed the checkpoint without notice"
    assert detected > len(data) // 6  # most bytes matter; the rest are zip padding that changes nothing


def test_a_flip_inside_the_weights_names_the_checksum(tmp_path: Path) -> None:
    path = tmp_path / "latest.pt"
    save_checkpoint(path, _checkpoint())
    with zipfile.ZipFile(path) as archive:
        offset = next(info for info in archive.infolist() if info.filename.endswith("data/0")).header_offset
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[offset + 26 : offset + 30])  # zip local file header
    start = offset + 30 + name_length + extra_length
    data[start + 10] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"corrupt or unreadable: the checksum of '.*data/0' does not match"):
        load_checkpoint(path)


class _Payload:
    """Anything that is not a tensor or plain container: what a malicious checkpoint would carry."""


@pytest.mark.parametrize("kind", ["foreign-object", "random-bytes"])
def test_foreign_content_gets_one_line_without_weights_only_advice(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "latest.pt"
    if kind == "foreign-object":
        torch.save({"format": 1, "policy_state": _Payload()}, path)
        expected = "holds objects other than tensors and plain containers"
    else:
        path.write_bytes(os.urandom(4096))
        expected = "corrupt or unreadable"
    with pytest.raises(CheckpointError, match=expected) as error:
        load_checkpoint(path)
    assert "weights_only" not in str(error.value)
    assert "\n" not in str(error.value)


@pytest.fixture
def umask_027() -> Iterator[None]:
    previous = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("umask_027")
def test_atomic_writes_respect_the_umask(tmp_path: Path) -> None:
    text, tensor = tmp_path / "summary.md", tmp_path / "latest.pt"
    write_text_atomic(text, "hello\n")
    torch_save_atomic(tensor, {"x": torch.zeros(1)})
    plain = tmp_path / "plain.txt"
    plain.write_text("written the ordinary way\n")
    for path in (text, tensor):
        assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o640


def test_stale_temporaries_of_killed_writes_are_removed(tmp_path: Path) -> None:
    stale = [tmp_path / ".latest.pt.0123456789ab.tmp", tmp_path / ".config.json.a1b2c3d4e5f6.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    kept = [tmp_path / "latest.pt", tmp_path / ".hidden", tmp_path / ".notes.tmp", tmp_path / "user.tmp"]
    for path in kept:
        path.write_bytes(b"user data")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in kept)


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "latest.pt"
    save_checkpoint(path, _checkpoint())
    before = path.read_bytes()

    def full_disk(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, _checkpoint())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]
