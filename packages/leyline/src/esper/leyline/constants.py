"""Numbers shared across packages, each in one place with the reason it exists and who reads it."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from esper.leyline.stages import SeedStage

#: A seed younger than this (epochs since germination) cannot be pruned (kasmina's slot, tamiyo's masks).
MIN_PRUNE_AGE = 5

#: Epochs a slot spends in EMBARGOED after a prune, then in RESETTING (kasmina's slot tick, tamiyo's features).
EMBARGO_EPOCHS = 5
RESET_EPOCHS = 1

#: How many epochs each failure stage is observed, counted by the slot's one per-epoch tick. PRUNED is transient:
#: the tick after an instant prune (or the tick that ends a scheduled prune's ramp) is the first embargo epoch,
#: so after any prune the slot is observed EMBARGOED for EMBARGO_EPOCHS epochs, RESETTING for RESET_EPOCHS,
#: and is empty again at the next tick.
FAILURE_DWELL_EPOCHS: Mapping[SeedStage, int] = MappingProxyType(
    {SeedStage.PRUNED: 0, SeedStage.EMBARGOED: EMBARGO_EPOCHS, SeedStage.RESETTING: RESET_EPOCHS}
)

#: Episode lengths (host epochs) of the task families (the app's task presets, simic's env defaults, and
#: kasmina's gates scale the TRAINING dwell from the CIFAR one).
DIGITS_EPISODE_EPOCHS = 60
CIFAR_EPISODE_EPOCHS = 150

#: Minimum measured gradient health (0..1) for TRAINING -> BLENDING (kasmina's gates, the app's task presets).
MIN_GRADIENT_HEALTH = 0.7

#: Minimum counterfactual contribution, in accuracy percentage points, to fossilize. Positive on purpose:
#: fossilizing a seed that improves nothing is reward hacking (kasmina's gates, tamiyo's heuristic).
MIN_FOSSILIZE_CONTRIBUTION = 0.5

#: |alpha - 1| below which a finished ramp counts as fully blended (kasmina's HOLDING gate).
ALPHA_TOLERANCE = 1e-6

#: Epochs of validation loss/accuracy history in an observation (simic fills it, tamiyo encodes it).
HISTORY_LENGTH = 5
