"""The morphogenetic model: a host with seed slots, and every service a trainer needs from it.

Slots are forward hooks on named host submodules, so the same mechanism serves the CNN host family and any
``nn.Module`` (bring your own host). A hook is registered only while its slot has a seed wired into the
forward: with every slot empty the model runs the bare host, bit for bit and at the host's speed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from esper.kasmina.alpha import ALPHA_TARGET_VALUES
from esper.kasmina.checkpoint import (
    ModelSnapshot,
    Record,
    capture_lifecycle,
    restore_lifecycle,
)
from esper.kasmina.counterfactual import (
    CounterfactualBatching,
    CounterfactualPlan,
    build_plan,
    check_alphas,
    per_sample_alphas,
    record_counterfactuals,
)
from esper.kasmina.gates import GateConfig
from esper.kasmina.hosts import CNNHost, CNNHostConfig
from esper.kasmina.seed import Seed
from esper.kasmina.sites import SITE_NDIM, find_sites
from esper.kasmina.slot import ExecutionResult, SeedSlot
from esper.kasmina.transformer_host import TransformerHost, TransformerHostConfig
from esper.leyline import (
    ALPHA_SPEED_TICKS,
    ConfigError,
    FactoredAction,
    InvalidSlotIdError,
    LifecycleOp,
    SeedStage,
    SlotCondition,
    SlotConfig,
    SlotId,
    SlotReport,
    Topology,
    blueprint_refusal,
    lifecycle_refusal,
)


def _generator(seed: int | torch.Generator) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        if seed.device.type != "cpu":
            raise ConfigError(f"the blueprint generator must be a CPU generator, got one on {seed.device}")
        return seed
    return torch.Generator().manual_seed(seed)


class MorphogeneticModel(nn.Module):
    """A host whose slots can grow seeds.

    ``host``: any module; ``slot_sites``: slot id -> path of the submodule after which the slot sits (each site
    must run once per forward and output [B, C, H, W] for CNN or [B, T, C] for transformer topologies);
    ``example_input``: one valid host input, for the probe that finds each site's channel count; ``seed``: an
    int or a CPU ``torch.Generator`` from which every germinated seed is initialised (same seed, same seeds).
    """

    _anchor: Tensor

    def __init__(
        self,
        host: nn.Module,
        slot_sites: Mapping[str, str] | Mapping[SlotId, str],
        example_input: Tensor,
        *,
        seed: int | torch.Generator,
        topology: Topology = Topology.CNN,
        gate_config: GateConfig | None = None,
    ) -> None:
        super().__init__()
        if not slot_sites:
            raise ConfigError("a morphogenetic model needs at least one slot site")
        paths = {SlotId.parse(k) if isinstance(k, str) else k: path for k, path in slot_sites.items()}
        self.slot_config = SlotConfig.from_ids(paths)
        self.topology = topology
        self.gate_config = gate_config if gate_config is not None else GateConfig()
        self.host = host
        sites = find_sites(host, {slot: paths[slot] for slot in self.slot_config.slot_ids}, example_input, topology)
        self._sites = tuple(sites[slot] for slot in self.slot_config.slot_ids)
        self._slots = tuple(
            SeedSlot(slot, sites[slot].channels, self.gate_config) for slot in self.slot_config.slot_ids
        )
        self.slots = nn.ModuleDict({str(slot.slot_id): slot for slot in self._slots})
        self._hooks: dict[int, RemovableHandle] = {}
        self._generator = _generator(seed)
        self._next_serial = 0
        first = next(iter(host.parameters()), None)
        anchor = torch.empty(
            0,
            device=example_input.device if first is None else first.device,
            dtype=torch.get_default_dtype() if first is None else first.dtype,
        )
        # Follows .to(device/dtype) of the model, so new seeds land where the host lives.
        self.register_buffer("_anchor", anchor, persistent=False)

    @classmethod
    def wrap(
        cls,
        module: nn.Module,
        slot_sites: Mapping[str, str] | Mapping[SlotId, str],
        example_input: Tensor,
        *,
        seed: int | torch.Generator,
        topology: Topology = Topology.CNN,
        gate_config: GateConfig | None = None,
    ) -> MorphogeneticModel:
        """Bring your own host: slots after the named submodules of ``module``, no subclassing."""
        return cls(module, slot_sites, example_input, seed=seed, topology=topology, gate_config=gate_config)

    @classmethod
    def from_cnn_config(
        cls,
        config: CNNHostConfig,
        *,
        seed: int | torch.Generator,
        image_size: int,
        slot_config: SlotConfig | None = None,
        gate_config: GateConfig | None = None,
    ) -> MorphogeneticModel:
        """A CNN host built from ``config`` (initialised from ``seed`` too), with slots ``slot_config``
        (default: one slot after each block). Inputs are [B, in_channels, image_size, image_size]."""
        generator = _generator(seed)
        host = CNNHost.create(config, generator)
        slots = slot_config if slot_config is not None else SlotConfig.after_blocks(config.n_blocks)
        return cls(
            host,
            config.slot_sites(slots),
            config.example_input(image_size),
            seed=generator,
            topology=Topology.CNN,
            gate_config=gate_config,
        )

    @classmethod
    def from_transformer_config(
        cls,
        config: TransformerHostConfig,
        *,
        seed: int | torch.Generator,
        slot_config: SlotConfig | None = None,
        gate_config: GateConfig | None = None,
    ) -> MorphogeneticModel:
        """A transformer host built from ``config`` (initialised from ``seed`` too), with slots ``slot_config``
        (default: one slot after each block, ``r0c{i}`` after block i). Inputs are token ids [B, T], T <= context;
        outputs next-token logits [B, T, vocab_size]."""
        generator = _generator(seed)
        host = TransformerHost.create(config, generator)
        slots = slot_config if slot_config is not None else SlotConfig.after_blocks(config.n_blocks)
        return cls(
            host,
            config.slot_sites(slots),
            config.example_input(),
            seed=generator,
            topology=Topology.TRANSFORMER,
            gate_config=gate_config,
        )

    # ------------------------------------------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> Tensor:
        """The host's forward with every wired seed applied at its slot (e.g. [B, C, H, W] -> [B, classes])."""
        out: Tensor = self.host(x)
        return out

    def forward_with_alphas(
        self, x: Tensor, alphas: Tensor, batching: CounterfactualBatching = CounterfactualBatching.AUTO
    ) -> Tensor:
        """Run K alpha configurations: x [B, ...], alphas [K, num_slots] (NaN = keep the slot's alpha) -> outputs
        [K, B, ...] (logits [K, B, classes]).

        FUSED stacks the K copies of the batch along the batch dimension (one forward) and every overridden slot
        blends with per-sample alphas; SEPARATE runs one such forward per configuration; AUTO picks by the
        model's device (``CounterfactualBatching``). An override on a TRAINING seed applies its blend operator
        for real. Runs without gradients and needs eval mode (BatchNorm must not mix the configurations'
        statistics).
        """
        if self.training:
            raise ConfigError("forward_with_alphas needs eval mode: call model.eval() first")
        check_alphas(alphas, len(self._slots))
        if batching.resolve(self._anchor.device) is CounterfactualBatching.SEPARATE and alphas.shape[0] > 1:
            return torch.cat([self._forward_stacked(x, alphas[k : k + 1]) for k in range(alphas.shape[0])])
        return self._forward_stacked(x, alphas)

    def _forward_stacked(self, x: Tensor, alphas: Tensor) -> Tensor:
        """One forward of ``alphas.shape[0]`` stacked copies of ``x``, each with its row's alphas."""
        batch = x.shape[0]
        count = alphas.shape[0]
        overrides = per_sample_alphas(alphas, self._slots, batch, SITE_NDIM[self.topology], self._anchor)
        stacked = x.repeat(count, *([1] * (x.dim() - 1)))
        try:
            for index, override in overrides.items():
                self._slots[index].alpha_override = override
            with torch.no_grad():
                out: Tensor = self.host(stacked)
        finally:
            for index in overrides:
                self._slots[index].alpha_override = None
        return out.view(count, batch, *out.shape[1:])

    # ---------------------------------------------------------------------------------------------- lifecycle
    def slot(self, slot_id: str | SlotId) -> SeedSlot:
        return self._slots[self.slot_config.index_of(slot_id)]

    def execute(self, action: FactoredAction, val_accuracy: float) -> ExecutionResult:
        """Carry out one lifecycle decision. ``val_accuracy`` (percent) is recorded as the accuracy at
        germination / stage entry. What leyline's legality rule forbids, and what a gate refuses, returns
        ``success=False`` and changes nothing."""
        if not (math.isfinite(val_accuracy) and 0.0 <= val_accuracy <= 100.0):
            raise ConfigError(f"val_accuracy must be a percentage in [0, 100], got {val_accuracy}")
        if action.op is LifecycleOp.WAIT:
            return ExecutionResult(True, "wait")
        if action.slot >= self.slot_config.num_slots:
            raise InvalidSlotIdError(
                f"action slot index {action.slot} out of range for {self.slot_config.num_slots} slots"
            )
        reason = lifecycle_refusal(action.op, action.slot, self.slot_conditions())
        if reason is None and action.op is LifecycleOp.GERMINATE:
            reason = blueprint_refusal(action.blueprint, self.topology)
        if reason is not None:
            return ExecutionResult(
                False, f"{action.op.name} in slot {self.slot_config.slot_ids[action.slot]}: {reason}"
            )
        slot = self._slots[action.slot]
        if action.op is LifecycleOp.GERMINATE:
            result = self._germinate(slot, action, val_accuracy)
        elif action.op is LifecycleOp.ADVANCE:
            result = slot.advance(val_accuracy)
        elif action.op is LifecycleOp.FOSSILIZE:
            result = slot.fossilize(val_accuracy)
        elif action.op is LifecycleOp.PRUNE:
            result = slot.prune(ALPHA_SPEED_TICKS[action.alpha_speed], action.alpha_curve)
        else:
            result = slot.set_alpha_target(
                ALPHA_TARGET_VALUES[action.alpha_target],
                ALPHA_SPEED_TICKS[action.alpha_speed],
                action.alpha_curve,
                action.style,
                val_accuracy,
            )
        self._sync_hooks()
        return result

    def _germinate(self, slot: SeedSlot, action: FactoredAction, val_accuracy: float) -> ExecutionResult:
        seed = Seed.create(
            topology=self.topology,
            blueprint=action.blueprint,
            channels=slot.channels,
            style=action.style,
            tempo=action.tempo,
            alpha_target=action.alpha_target,
            generator=self._generator,
            serial=self._next_serial,
        ).to(device=self._anchor.device, dtype=self._anchor.dtype)
        self._next_serial += 1
        return slot.germinate(seed, val_accuracy)

    def tick(self) -> None:
        """One host epoch has passed: every slot ticks once (ages, dwell, alpha ramps, scheduled prunes)."""
        for slot in self._slots:
            slot.tick()
        self._sync_hooks()

    def _sync_hooks(self) -> None:
        """Hook exactly the slots whose seed is wired into the forward."""
        for index, slot in enumerate(self._slots):
            handle = self._hooks.get(index)
            if slot.wired and handle is None:
                self._hooks[index] = self._sites[index].module.register_forward_hook(slot.host_hook)
            elif not slot.wired and handle is not None:
                handle.remove()
                del self._hooks[index]

    def slot_conditions(self) -> tuple[SlotCondition, ...]:
        """What leyline's legality rule reads about every slot, in slot-config order."""
        return tuple(slot.condition() for slot in self._slots)

    def stages(self) -> tuple[SeedStage, ...]:
        """Every slot's stage in slot-config order (cheap: no gradient read, no device sync)."""
        return tuple(slot.stage for slot in self._slots)

    def slot_reports(self) -> tuple[SlotReport, ...]:
        """One report per slot in slot-config order (empty slots included). Reads gradient norms (one sync
        per seed)."""
        return tuple(slot.report() for slot in self._slots)

    # ---------------------------------------------------------------------------------------- counterfactuals
    def counterfactual_plan(self) -> CounterfactualPlan:
        """The alpha configurations to evaluate this epoch: ``plan.alphas`` [K, num_slots] and ``plan.labels``."""
        return build_plan(self._slots)

    def record_counterfactuals(self, plan: CounterfactualPlan, accuracies: Tensor | Sequence[float]) -> None:
        """Store the results of ``plan`` (validation accuracy in percent per row, [K]) as the seeds'
        contribution, contribution at full alpha, velocity and freshness."""
        record_counterfactuals(plan, self._slots, accuracies)

    # ------------------------------------------------------------------------------------- gradients, params
    def observe_seed_gradients(self) -> None:
        """Call after every backward: accumulates each wired seed's gradient norm on the device (no sync)."""
        for slot in self._slots:
            if slot.wired and slot.seed is not None:
                slot.seed.observe_gradients()

    def host_parameters(self) -> Iterator[nn.Parameter]:
        """The host's own parameters (fossils stay in their slot's seed group)."""
        return self.host.parameters()

    def seed_parameters(self, slot_id: str | SlotId) -> Iterator[nn.Parameter]:
        """Parameters of the seed in ``slot_id`` (module and gate), none for an empty slot."""
        seed = self.slot(slot_id).seed
        return iter(()) if seed is None else seed.parameters()

    @property
    def seed_parameter_version(self) -> int:
        """Changes whenever any slot's seed appears, disappears or is replaced: rebuild seed optimizers then."""
        return sum(slot.generation for slot in self._slots)

    def host_param_count(self) -> int:
        return sum(p.numel() for p in self.host.parameters())

    def active_seed_param_count(self) -> int:
        """What the seeds that change the output (alpha > 0 or fossilized) cost, frozen or not: the parameters
        a user would keep if training stopped now (rent and ``params_added`` both use this count)."""
        return sum(slot.seed.param_count() for slot in self._slots if slot.seed is not None and slot.affects_output)

    # ------------------------------------------------------------------------------ snapshots and checkpoints
    def snapshot(self) -> ModelSnapshot:
        """The whole lifecycle state (host, every seed in every stage, counters), detached copies."""
        fossils = sum(stage is SeedStage.FOSSILIZED for stage in self.stages())
        return ModelSnapshot(self.lifecycle_state(), fossils)

    def restore(self, snapshot: ModelSnapshot) -> None:
        """Rewind to ``snapshot``: the model becomes exactly what it was when the snapshot was taken (live seeds
        included, in the stage they were in; a seed germinated since never existed)."""
        self.load_lifecycle_state(snapshot.state)

    def lifecycle_state(self) -> Record:
        """Everything needed to rebuild this model's state: host, seeds in every stage, counters, metrics.
        Plain types and tensors only (``torch.load(weights_only=True)`` reads it)."""
        return capture_lifecycle(self.host, self._slots, self.topology, self._generator, self._next_serial)

    def load_lifecycle_state(self, state: Mapping[str, object]) -> None:
        """Load a ``lifecycle_state`` into this model, which must be built like the one that saved it."""
        self._next_serial = restore_lifecycle(
            state, self.host, self._slots, self.topology, self._generator, self._anchor.device, self._anchor.dtype
        )
        self._sync_hooks()
