"""Seed modules per topology and the registry that builds them."""

from esper.kasmina.blueprints.base import BlueprintSpec, SeedModule
from esper.kasmina.blueprints.registry import BLUEPRINTS, BlueprintRegistry

__all__ = ["BLUEPRINTS", "BlueprintRegistry", "BlueprintSpec", "SeedModule"]
