"""Test doubles for simic's own tests: a small honest ``PolicyBundle`` (simic never imports tamiyo) and
synthetic observations. The real LSTM bundle is exercised against simic in the top-level integration tests.

The double has its own encoder, unlike tamiyo's (other input names, an integer input of another shape), so
simic's tests prove that the buffer and PPO carry a policy's inputs without knowing them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from esper.kasmina import CNNHostConfig, GateConfig
from esper.leyline import (
    HEAD_ORDER,
    HEAD_PLACEHOLDERS,
    ActionExplanation,
    ActionHead,
    ActionMasks,
    ActionResult,
    Blueprint,
    EncodedObservations,
    EnvObservation,
    EvalResult,
    FactoredAction,
    SeedStage,
    SlotConfig,
    SlotReport,
    Tempo,
    Topology,
    head_sizes,
    mask_width,
    relevance_rows,
)
from esper.leyline.protocols import HiddenState, PolicyInputs
from esper.simic.envs.model_factories import CNNModelFactory
from esper.simic.envs.task_data import TaskData

_NUM_STAGES = len(SeedStage)
#: ``[op, head]`` bool: the double's own tensor of leyline's relevance table (a policy builds its own).
_RELEVANCE = torch.tensor(relevance_rows(), dtype=torch.bool)


class TinyBundle:
    """An LSTM policy with linear heads. Its inputs are ``progress`` ``[..., 2]`` float (epoch fraction and
    accuracy) and ``stage`` ``[..., num_slots]`` int64 (each slot's stage), one-hot encoded inside the forward.
    Masks allow every op in every slot (invalid actions simply fail in the env), except NOOP for the blueprint
    head; irrelevant heads are reduced to their placeholder."""

    def __init__(self, slot_config: SlotConfig, hidden: int = 16, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self._slot_config = slot_config
        self.sizes = head_sizes(slot_config, Topology.CNN)
        width = 2 + slot_config.num_slots * _NUM_STAGES
        self.lstm = nn.LSTM(width, hidden, batch_first=True)
        self.heads = nn.ModuleDict({h.value: nn.Linear(hidden, self.sizes[h]) for h in HEAD_ORDER})
        self.value = nn.Linear(hidden, 1)
        self.mean = torch.zeros(2)
        self.normalizer_updates = 0

    kind = "tiny"

    @property
    def slot_config(self) -> SlotConfig:
        return self._slot_config

    @property
    def topology(self) -> Topology:
        return Topology.CNN

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def encode(self, observations: Sequence[EnvObservation]) -> EncodedObservations:
        batch = len(observations)
        progress = torch.tensor([[obs.epoch / obs.max_epochs, obs.val_accuracy / 100.0] for obs in observations])
        stage = torch.tensor([[int(slot.stage) for slot in obs.slots] for obs in observations], dtype=torch.int64)
        n_ops = self.sizes[ActionHead.OP]
        heads = {h: torch.ones(batch, self.sizes[h], dtype=torch.bool) for h in HEAD_ORDER[1:-1]}
        heads[ActionHead.BLUEPRINT][:, 0] = False
        masks = ActionMasks.of(
            op=torch.ones(batch, n_ops, dtype=torch.bool),
            slot_by_op=torch.ones(batch, n_ops, self._slot_config.num_slots, dtype=torch.bool),
            heads=heads,
        )
        return EncodedObservations({"progress": progress, "stage": stage}, masks)

    def initial_hidden(self, batch_size: int) -> HiddenState:
        zeros = torch.zeros(1, batch_size, self.lstm.hidden_size)
        return zeros, zeros.clone()

    def _forward(
        self, inputs: PolicyInputs, hidden: HiddenState
    ) -> tuple[dict[ActionHead, torch.Tensor], torch.Tensor, HiddenState]:
        stages = torch.nn.functional.one_hot(inputs["stage"], _NUM_STAGES).flatten(-2).float()
        features = torch.cat((inputs["progress"] - self.mean, stages), dim=-1)
        with torch.autocast(features.device.type, enabled=False):  # oneDNN has no bf16 LSTM on CPU
            out, new_hidden = self.lstm(features.float(), (hidden[0].float(), hidden[1].float()))
        logits = {h: self.heads[h.value](out) for h in HEAD_ORDER}
        return logits, self.value(out).squeeze(-1), (new_hidden[0], new_hidden[1])

    def get_action(
        self,
        observations: EncodedObservations,
        hidden: HiddenState,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        explain: bool = False,
    ) -> ActionResult:
        with torch.inference_mode():
            steps = {name: value.unsqueeze(1) for name, value in observations.inputs.items()}
            logits, values, new_hidden = self._forward(steps, hidden)
            batch = observations.masks.op.shape[0]
            masks: dict[ActionHead, torch.Tensor] = {ActionHead.OP: observations.masks.op}
            actions: dict[ActionHead, torch.Tensor] = {}
            op = _choose(logits[ActionHead.OP][:, 0], masks[ActionHead.OP], deterministic, generator)
            actions[ActionHead.OP] = op
            relevant = _RELEVANCE[op]  # [batch, heads]
            for index, head in enumerate(HEAD_ORDER[:-1]):
                if head is ActionHead.SLOT:
                    full = observations.masks.slot_by_op[torch.arange(batch), op]
                    placeholder = full.float().argmax(dim=1)
                else:
                    full = observations.masks.heads[head]
                    placeholder = torch.full((batch,), HEAD_PLACEHOLDERS[head])
                only = torch.nn.functional.one_hot(placeholder, self.sizes[head]).bool()
                mask = torch.where(relevant[:, index : index + 1], full, only)
                masks[head] = mask
                actions[head] = _choose(logits[head][:, 0], mask, deterministic, generator)
            log_probs = _stacked(_log_prob(logits[h][:, 0], masks[h], actions[h]) for h in HEAD_ORDER)
            explanation = None
            if explain:
                op_probabilities = _masked(logits[ActionHead.OP][:, 0], masks[ActionHead.OP]).exp()
                entropy = _stacked(_normalized_entropy(logits[h][:, 0], masks[h]) for h in HEAD_ORDER)
                explanation = ActionExplanation(op_probabilities, entropy)
            padded = torch.zeros(batch, len(HEAD_ORDER), mask_width(self.sizes), dtype=torch.bool)
            for column, head in enumerate(HEAD_ORDER):
                padded[:, column, : self.sizes[head]] = masks[head]
            chosen = _stacked(actions[head] for head in HEAD_ORDER)
        return ActionResult(chosen, log_probs, padded, relevant, values[:, 0], new_hidden, explanation)

    def evaluate_actions(
        self, inputs: PolicyInputs, actions: torch.Tensor, masks: torch.Tensor, hidden: HiddenState
    ) -> EvalResult:
        logits, values, _ = self._forward(inputs, hidden)
        # Each head scored on its own columns of the stacked actions and padded masks.
        heads = [(logits[h], masks[..., c, : self.sizes[h]], actions[..., c]) for c, h in enumerate(HEAD_ORDER)]
        log_probs = _stacked(_log_prob(logit, mask, action) for logit, mask, action in heads)
        entropy = _stacked(_normalized_entropy(logit, mask) for logit, mask, _ in heads)
        return EvalResult(log_probs, entropy, values)

    def update_normalizer(self, inputs: PolicyInputs) -> None:
        self.mean = 0.5 * self.mean + 0.5 * inputs["progress"].mean(dim=0)
        self.normalizer_updates += 1

    def parameters(self) -> Iterator[nn.Parameter]:
        yield from self.lstm.parameters()
        yield from self.heads.parameters()
        yield from self.value.parameters()

    def state_dict(self) -> dict[str, Any]:
        return {
            "lstm": self.lstm.state_dict(),
            "heads": self.heads.state_dict(),
            "value": self.value.state_dict(),
            "mean": self.mean.clone(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.lstm.load_state_dict(state["lstm"])
        self.heads.load_state_dict(state["heads"])
        self.value.load_state_dict(state["value"])
        self.mean = state["mean"].clone()

    def build_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "slots": list(self._slot_config.names()), "hidden": self.lstm.hidden_size}


def _stacked(per_head: Iterable[torch.Tensor]) -> torch.Tensor:
    """Per-head tensors in ``HEAD_ORDER`` as the seam's stacked tensor, a column per head (the last dimension)."""
    return torch.stack(list(per_head), dim=-1)


def _masked(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.float().masked_fill(~mask, -1e4), dim=-1)


def _log_prob(logits: torch.Tensor, mask: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    return _masked(logits, mask).gather(-1, action.unsqueeze(-1)).squeeze(-1)


def _normalized_entropy(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    log_p = _masked(logits, mask)
    entropy = -(log_p.exp() * log_p * mask).sum(-1)
    valid = mask.sum(-1)
    return torch.where(valid > 1, entropy / valid.clamp(min=2).float().log(), torch.zeros_like(entropy))


def _choose(
    logits: torch.Tensor, mask: torch.Tensor, deterministic: bool, generator: torch.Generator | None
) -> torch.Tensor:
    log_p = _masked(logits, mask)
    if deterministic:
        return log_p.argmax(dim=-1)
    return torch.multinomial(log_p.exp(), 1, generator=generator).squeeze(-1)


def empty_observation(
    slot_config: SlotConfig, epoch: int = 0, max_epochs: int = 4, accuracy: float = 10.0
) -> EnvObservation:
    return EnvObservation(
        epoch=epoch,
        max_epochs=max_epochs,
        val_loss=math.log(10),
        val_accuracy=accuracy,
        slots=tuple(SlotReport.empty(s) for s in slot_config.slot_ids),
        germinations_remaining=3,
    )


def stripes_task(n_train: int = 256, n_val: int = 128, seed: int = 0, n_test: int = 128) -> TaskData:
    """Horizontal vs vertical stripes on 8x8 images. A 1x1-conv host with global pooling cannot tell the
    orientations apart (same pixel statistics); a 3x3 seed can, so growth visibly pays."""
    generator = torch.Generator().manual_seed(seed)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, 2, (n,), generator=generator)
        phase = torch.randint(0, 2, (n, 1, 1), generator=generator)
        rows = (torch.arange(8).view(1, 8, 1) + phase) % 2
        cols = (torch.arange(8).view(1, 1, 8) + phase) % 2
        images = torch.where(labels.view(n, 1, 1) == 0, rows.expand(n, 8, 8), cols.expand(n, 8, 8)).float()
        images = images + 0.3 * torch.randn(n, 8, 8, generator=generator)
        return images.unsqueeze(1), labels

    train_x, train_y = make(n_train)
    val_x, val_y = make(n_val)
    test_x, test_y = make(n_test)
    return TaskData(train_x, train_y, val_x, val_y, test_x, test_y, num_classes=2)


def stripes_factory(slots: int = 2) -> CNNModelFactory:
    host = CNNHostConfig(in_channels=1, num_classes=2, base_channels=1, kernel_size=1, n_blocks=slots, pool_layers=1)
    return CNNModelFactory(host, 8, SlotConfig.after_blocks(slots), GateConfig.for_horizon(12))


def grow_first_slot(observation: EnvObservation) -> FactoredAction:
    """A scripted controller step: germinate conv_light in slot 0 at once, push it to fossil, then wait."""
    stage = observation.slots[0].stage
    if stage is SeedStage.DORMANT and observation.epoch == 0:
        return FactoredAction.germinate(0, Blueprint.CONV_LIGHT, tempo=Tempo.FAST)
    if stage in (SeedStage.GERMINATED, SeedStage.TRAINING, SeedStage.BLENDING):
        return FactoredAction.advance(0)
    if stage is SeedStage.HOLDING:
        return FactoredAction.fossilize(0)
    return FactoredAction.wait()


class ScriptedController:
    """A leyline Controller that applies ``grow_first_slot`` to every env."""

    name = "scripted"

    def __init__(self) -> None:
        self.started: list[int] = []

    def start_episodes(self, n_envs: int) -> None:
        self.started.append(n_envs)

    def act(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> list[FactoredAction]:
        return [grow_first_slot(obs) for obs in observations]
