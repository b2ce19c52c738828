"""Picklable recipes that build a fresh morphogenetic model for an episode seed (sent to worker processes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from esper.kasmina import CNNHostConfig, GateConfig, MorphogeneticModel, TransformerHostConfig
from esper.leyline import SlotConfig


class ModelFactory(Protocol):
    """``factory(seed)`` builds the episode's model; the same seed must give the same model."""

    def __call__(self, seed: int) -> MorphogeneticModel: ...


@dataclass(frozen=True)
class CNNModelFactory:
    """A CNN host from kasmina's host family with the given slots and gate thresholds."""

    host: CNNHostConfig
    image_size: int
    slot_config: SlotConfig
    gate_config: GateConfig

    def __call__(self, seed: int) -> MorphogeneticModel:
        return MorphogeneticModel.from_cnn_config(
            self.host,
            seed=seed,
            image_size=self.image_size,
            slot_config=self.slot_config,
            gate_config=self.gate_config,
        )


@dataclass(frozen=True)
class TransformerModelFactory:
    """A decoder-only transformer host from kasmina with the given slots and gate thresholds."""

    host: TransformerHostConfig
    slot_config: SlotConfig
    gate_config: GateConfig

    def __call__(self, seed: int) -> MorphogeneticModel:
        return MorphogeneticModel.from_transformer_config(
            self.host, seed=seed, slot_config=self.slot_config, gate_config=self.gate_config
        )
