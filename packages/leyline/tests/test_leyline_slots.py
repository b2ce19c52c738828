"""Slot ids and slot configs."""

from __future__ import annotations

import pytest

from esper.leyline import InvalidSlotIdError, SlotConfig, SlotId


def test_parse_and_format() -> None:
    assert SlotId.parse("r0c2") == SlotId(0, 2)
    assert str(SlotId(1, 10)) == "r1c10"
    assert SlotId.parse(" r12c3 ") == SlotId(12, 3)


@pytest.mark.parametrize("text", ["", "r0", "c0r0", "r-1c0", "R0C1", "r0c1x", "slot0", "r0 c1"])
def test_malformed_ids_are_rejected_with_the_input_quoted(text: str) -> None:
    with pytest.raises(InvalidSlotIdError, match="malformed slot id"):
        SlotId.parse(text)


def test_non_string_is_rejected() -> None:
    with pytest.raises(InvalidSlotIdError, match="must be a string"):
        SlotId.parse(3)  # type: ignore[arg-type]


def test_negative_coordinates_are_rejected() -> None:
    with pytest.raises(InvalidSlotIdError, match=">= 0"):
        SlotId(-1, 0)


def test_config_orders_row_major() -> None:
    config = SlotConfig.from_ids(["r1c0", "r0c2", "r0c10", "r0c1"])
    assert config.names() == ("r0c1", "r0c2", "r0c10", "r1c0")
    assert config.index_of("r0c10") == 2
    assert config.num_slots == 4


def test_config_errors() -> None:
    with pytest.raises(InvalidSlotIdError, match="at least one slot"):
        SlotConfig(())
    with pytest.raises(InvalidSlotIdError, match="duplicate"):
        SlotConfig.from_ids(["r0c0", "r0c0"])
    with pytest.raises(InvalidSlotIdError, match="row-major"):
        SlotConfig((SlotId(0, 1), SlotId(0, 0)))
    with pytest.raises(InvalidSlotIdError, match="not enabled"):
        SlotConfig.after_blocks(2).index_of("r0c5")
    with pytest.raises(InvalidSlotIdError, match="at least one block"):
        SlotConfig.after_blocks(0)


def test_after_blocks() -> None:
    assert SlotConfig.after_blocks(3).names() == ("r0c0", "r0c1", "r0c2")
