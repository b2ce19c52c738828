"""Slot ids (``r{row}c{col}``) and the slot config that fixes which slots exist and their order."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from esper.leyline.errors import InvalidSlotIdError

_SLOT_PATTERN = re.compile(r"r(\d+)c(\d+)")


@dataclass(frozen=True, order=True, slots=True)
class SlotId:
    """An injection point: ``row`` picks the kind of site (0 after a block, 1 after its pool), ``col`` the block.

    Ordering is row-major, which is the order of the slot action head.
    """

    row: int
    col: int

    def __post_init__(self) -> None:
        if self.row < 0 or self.col < 0:
            raise InvalidSlotIdError(f"slot row and column must be >= 0, got row={self.row} col={self.col}")

    @classmethod
    def parse(cls, text: str) -> SlotId:
        """Parse ``"r0c2"``; anything else raises ``InvalidSlotIdError`` quoting the input."""
        if not isinstance(text, str):
            raise InvalidSlotIdError(f"slot id must be a string like 'r0c1', got {type(text).__name__}")
        match = _SLOT_PATTERN.fullmatch(text.strip())
        if match is None:
            raise InvalidSlotIdError(f"malformed slot id {text!r}: expected 'r{{row}}c{{col}}', e.g. 'r0c1'")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"r{self.row}c{self.col}"


@dataclass(frozen=True, slots=True)
class SlotConfig:
    """The enabled slots of a model, unique and in row-major order (the slot head's action order)."""

    slot_ids: tuple[SlotId, ...]

    def __post_init__(self) -> None:
        if not self.slot_ids:
            raise InvalidSlotIdError("a slot config needs at least one slot")
        if len(set(self.slot_ids)) != len(self.slot_ids):
            raise InvalidSlotIdError(f"duplicate slot ids in {[str(s) for s in self.slot_ids]}")
        if list(self.slot_ids) != sorted(self.slot_ids):
            raise InvalidSlotIdError(
                f"slot ids must be in row-major order, got {[str(s) for s in self.slot_ids]}; "
                "use SlotConfig.from_ids() to sort them"
            )

    @classmethod
    def from_ids(cls, ids: Iterable[str | SlotId]) -> SlotConfig:
        """Build from strings or ``SlotId``s in any order; they are parsed and sorted row-major."""
        parsed = [s if isinstance(s, SlotId) else SlotId.parse(s) for s in ids]
        return cls(tuple(sorted(parsed)))

    @classmethod
    def after_blocks(cls, n_blocks: int) -> SlotConfig:
        """One slot after each of ``n_blocks`` host blocks: ``r0c0 .. r0c{n-1}``."""
        if n_blocks < 1:
            raise InvalidSlotIdError(f"need at least one block, got {n_blocks}")
        return cls(tuple(SlotId(0, col) for col in range(n_blocks)))

    @property
    def num_slots(self) -> int:
        return len(self.slot_ids)

    def index_of(self, slot: str | SlotId) -> int:
        """Position of ``slot`` in the slot head; unknown slots raise ``InvalidSlotIdError``."""
        slot_id = slot if isinstance(slot, SlotId) else SlotId.parse(slot)
        try:
            return self.slot_ids.index(slot_id)
        except ValueError:
            raise InvalidSlotIdError(
                f"slot {slot_id} is not enabled; enabled slots are {[str(s) for s in self.slot_ids]}"
            ) from None

    def names(self) -> tuple[str, ...]:
        return tuple(str(s) for s in self.slot_ids)
