"""Checks that an observation belongs to the slot config a policy or controller was built for.

Features and masks index slots by position, so an observation whose slots are not exactly the configured ones,
in the configured order, would silently feed one slot's state into another slot's columns.
"""

from __future__ import annotations

from esper.leyline import EnvObservation, FeatureWidthError, InvalidSlotIdError, SlotConfig


def require_configured_slots(observation: EnvObservation, slot_config: SlotConfig) -> None:
    """Raise unless ``observation.slots`` reports exactly ``slot_config``'s slots, in its order."""
    if len(observation.slots) != slot_config.num_slots:
        raise FeatureWidthError(
            f"observation reports {len(observation.slots)} slots, the policy was built for "
            f"{slot_config.num_slots} ({list(slot_config.names())})"
        )
    for report, expected in zip(observation.slots, slot_config.slot_ids, strict=True):
        if report.slot_id != expected:
            raise InvalidSlotIdError(
                f"observation slots {[str(r.slot_id) for r in observation.slots]} do not match the slot config "
                f"{list(slot_config.names())} (order matters: row-major)"
            )
