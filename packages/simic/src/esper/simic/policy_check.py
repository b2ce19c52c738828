"""``check_policy_bundle``: does a policy honour leyline's ``PolicyBundle`` the way simic relies on it?

In the spirit of Gymnasium's ``check_env``: it calls every member of the protocol with real inputs (synthetic
observations of the bundle's own slot config), checks the types and shapes of what comes back, and checks seam
parity: the steps ``get_action`` returned, stored in simic's own ``RolloutBuffer`` and handed back, are scored by
``evaluate_actions`` with the same log-probs and values. The first problem raises leyline's
``PolicyContractError`` naming the member and what is wrong. The bundle is left as it was found (its state is
restored after ``update_normalizer``; gradients the check creates are removed).

Why it lives in simic: the check needs torch and simic's buffer, and leyline (where the protocol is) has no torch
at runtime. Simic is the package that calls these members, so it states what it relies on. Tamiyo never imports
simic, so tamiyo's bundles are checked in the repository's cross-member tests (``tests/``), simic's test double
in simic's own tests: a double that drifted from the protocol fails there.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence

import torch

from esper.leyline import (
    HEAD_INDEX,
    HEAD_ORDER,
    ActionExplanation,
    ActionHead,
    ActionMasks,
    ActionResult,
    EncodedObservations,
    EnvObservation,
    EvalResult,
    LifecycleOp,
    PolicyBundle,
    PolicyContractError,
    SlotConfig,
    SlotReport,
    Topology,
    head_sizes,
    is_relevant,
    mask_columns,
    mask_width,
)
from esper.leyline.protocols import HiddenState
from esper.simic.ppo.rollout_buffer import RolloutBuffer

#: How closely ``evaluate_actions`` must reproduce what ``get_action`` returned (float32 recomputation).
PARITY_RTOL = 1e-4
PARITY_ATOL = 1e-5


def check_policy_bundle(bundle: object, *, n_envs: int = 3, steps: int = 4, seed: int = 0) -> None:
    """Raise ``PolicyContractError`` unless ``bundle`` behaves as a ``PolicyBundle`` over ``n_envs`` envs and
    ``steps`` steps (random draws from a generator seeded with ``seed``)."""
    if not isinstance(bundle, PolicyBundle):
        members = [name for name in vars(PolicyBundle) if not name.startswith("_")]
        missing = sorted(name for name in members if not hasattr(bundle, name))
        raise PolicyContractError(f"{type(bundle).__name__} is not a PolicyBundle: it lacks {missing}")
    _check_identity(bundle)
    saved_state = copy.deepcopy(bundle.state_dict())
    parameters = _parameters(bundle)
    grads = [None if p.grad is None else p.grad.detach().clone() for p in parameters]
    sizes = head_sizes(bundle.slot_config, bundle.topology)
    hidden = bundle.initial_hidden(n_envs)
    _check_hidden("initial_hidden", hidden, n_envs)
    buffer = RolloutBuffer(n_envs, steps, sizes, hidden)
    generator = torch.Generator(device=bundle.device).manual_seed(seed)
    for t in range(steps):
        observations = [_observation(bundle.slot_config, t, steps, env) for env in range(n_envs)]
        encoded = bundle.encode(observations)
        _check_encoded(encoded, n_envs, sizes)
        result = _act_reproducibly(bundle, encoded, hidden, generator, sizes)
        _check_result(result, encoded, hidden, sizes)
        buffer.add(range(n_envs), encoded.inputs, result, [0.0] * n_envs, [t == steps - 1] * n_envs)
        hidden = result.hidden
    for parameter in parameters:
        parameter.grad = None
    _check_parity(bundle, buffer)
    bundle.update_normalizer(buffer.valid_inputs())
    _check_round_trip(bundle, saved_state)
    for parameter, grad in zip(parameters, grads, strict=True):
        parameter.grad = grad


def _check_identity(bundle: PolicyBundle) -> None:
    expected: Mapping[str, type] = {
        "kind": str,
        "slot_config": SlotConfig,
        "topology": Topology,
        "device": torch.device,
    }
    for name, kind in expected.items():
        value = getattr(bundle, name)
        if not isinstance(value, kind):
            raise PolicyContractError(f"{name} is a {type(value).__name__}, expected {kind.__name__}")
    if not bundle.kind:
        raise PolicyContractError("kind is empty; it must be the registry name of the bundle")
    if not _parameters(bundle):
        raise PolicyContractError("parameters() yields no torch.nn.Parameter: there is nothing to train")
    config = bundle.build_config()
    try:
        json.dumps(config)
    except (TypeError, ValueError) as error:
        raise PolicyContractError(f"build_config() is not JSON-serializable: {error}") from None


def _parameters(bundle: PolicyBundle) -> list[torch.nn.Parameter]:
    parameters = list(bundle.parameters())
    if not all(isinstance(p, torch.nn.Parameter) for p in parameters):
        raise PolicyContractError("parameters() yields something that is not a torch.nn.Parameter")
    return parameters


def _observation(slot_config: SlotConfig, epoch: int, max_epochs: int, env: int) -> EnvObservation:
    """A plausible observation: empty slots, accuracy and loss that differ by env and improve with the epoch."""
    accuracy = 10.0 + 5.0 * env + 10.0 * epoch
    return EnvObservation(
        epoch=epoch,
        max_epochs=max_epochs,
        val_loss=2.3 / (1 + epoch + env),
        val_accuracy=accuracy,
        slots=tuple(SlotReport.empty(slot) for slot in slot_config.slot_ids),
        germinations_remaining=3,
    )


def _shape(name: str, tensor: object, expected: Sequence[int], dtype: torch.dtype | None = None) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor):
        raise PolicyContractError(f"{name} is a {type(tensor).__name__}, expected a tensor")
    if tuple(tensor.shape) != tuple(expected):
        raise PolicyContractError(f"{name} has shape {list(tensor.shape)}, expected {list(expected)}")
    if dtype is not None and tensor.dtype != dtype:
        raise PolicyContractError(f"{name} is {tensor.dtype}, expected {dtype}")
    if dtype is None and not tensor.is_floating_point():
        raise PolicyContractError(f"{name} is {tensor.dtype}, expected a floating dtype")
    return tensor


def _check_hidden(name: str, hidden: object, n_envs: int, like: HiddenState | None = None) -> None:
    if not (isinstance(hidden, tuple) and len(hidden) == 2 and all(isinstance(t, torch.Tensor) for t in hidden)):
        raise PolicyContractError(f"{name} must be a pair of tensors (h, c)")
    for part, tensor in zip("hc", hidden, strict=True):
        expected = tuple(like[0].shape) if like is not None else tuple(tensor.shape)
        if tensor.dim() != 3 or tensor.shape[1] != n_envs or tuple(tensor.shape) != expected:
            raise PolicyContractError(
                f"{name} {part} has shape {list(tensor.shape)}, expected [layers, {n_envs}, hidden]"
                + (f" = {list(expected)}" if like is not None else "")
            )


def _check_encoded(encoded: object, n_envs: int, sizes: Mapping[ActionHead, int]) -> EncodedObservations:
    if not isinstance(encoded, EncodedObservations):
        raise PolicyContractError(f"encode() returned a {type(encoded).__name__}, expected EncodedObservations")
    if not isinstance(encoded.inputs, Mapping) or not encoded.inputs:
        raise PolicyContractError("encode() inputs must be a non-empty mapping of names to tensors")
    for name, value in encoded.inputs.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor) or value.dim() < 1:
            raise PolicyContractError(f"encode() input {name!r} must be a named tensor with a leading batch dimension")
        if value.shape[0] != n_envs:
            raise PolicyContractError(
                f"encode() input {name!r} has shape {list(value.shape)}, expected [{n_envs}, ...]"
            )
    masks = encoded.masks
    if not isinstance(masks, ActionMasks):
        raise PolicyContractError(f"encode() masks are a {type(masks).__name__}, expected ActionMasks")
    if dict(masks.head_sizes) != dict(sizes):
        raise PolicyContractError(
            f"encode() masks have head sizes {_sizes(masks.head_sizes)}, expected {_sizes(sizes)} "
            "(leyline's head_sizes of the bundle's slot config and topology)"
        )
    columns = max(part.stop for part in mask_columns(sizes).values())
    _shape("encode() masks side_by_side", masks.side_by_side, (n_envs, columns), torch.bool)
    return encoded


def _sizes(sizes: Mapping[ActionHead, int]) -> dict[str, int]:
    return {head.value: sizes[head] for head in HEAD_ORDER}


def _act_reproducibly(
    bundle: PolicyBundle,
    encoded: EncodedObservations,
    hidden: HiddenState,
    generator: torch.Generator,
    sizes: Mapping[ActionHead, int],
) -> ActionResult:
    """``get_action`` twice from the same generator state, once more with ``explain``, and twice
    deterministically: the same actions each time (rollouts are reproducible from their seed, explaining draws
    nothing, evaluation takes the argmax)."""
    state = generator.get_state()
    first = bundle.get_action(encoded, hidden, False, generator)
    after_first = generator.get_state()
    generator.set_state(state)
    pairs = {
        "from the same generator": (first, bundle.get_action(encoded, hidden, False, generator)),
        "deterministically": (bundle.get_action(encoded, hidden, True), bundle.get_action(encoded, hidden, True)),
    }
    generator.set_state(state)
    pairs["with explain=True"] = (first, bundle.get_action(encoded, hidden, False, generator, explain=True))
    if not torch.equal(generator.get_state(), after_first):
        raise PolicyContractError("get_action(explain=True) drew from the generator more than get_action() does")
    n_envs = encoded.masks.side_by_side.shape[0]
    for how, (one, other) in pairs.items():
        for result in (one, other):
            _check_fields(result, n_envs, sizes)
        for column, head in enumerate(HEAD_ORDER):
            if not torch.equal(one.actions[:, column], other.actions[:, column]):
                raise PolicyContractError(f"get_action() chose different {head.value} actions {how}")
    _check_explanation(pairs["with explain=True"][1], encoded, first.explanation)
    return first


def _check_explanation(result: ActionResult, encoded: EncodedObservations, unasked: ActionExplanation | None) -> None:
    """Asked for, the explanation holds the op probabilities (a distribution over the allowed ops) and one
    normalized entropy in [0, 1] per head and env; not asked for, there is none."""
    if unasked is not None:
        raise PolicyContractError("get_action() returned an explanation nobody asked for (explain=False)")
    explanation = result.explanation
    if not isinstance(explanation, ActionExplanation):
        raise PolicyContractError("get_action(explain=True) returned no ActionExplanation")
    allowed = encoded.masks.op.cpu()
    probabilities = _shape("explanation op probabilities", explanation.op_probabilities, tuple(allowed.shape)).cpu()
    if bool((probabilities[~allowed] != 0).any()) or not torch.allclose(
        probabilities.sum(dim=1), torch.ones(allowed.shape[0]), atol=1e-4
    ):
        raise PolicyContractError("explanation op probabilities must sum to 1 over the allowed ops, 0 elsewhere")
    entropies = _shape(
        "explanation entropy (a column per head, in HEAD_ORDER)",
        explanation.entropy,
        (allowed.shape[0], len(HEAD_ORDER)),
    ).cpu()
    for column, head in enumerate(HEAD_ORDER):
        entropy = entropies[:, column]
        if not bool(((entropy >= -1e-6) & (entropy <= 1 + 1e-6)).all()):
            raise PolicyContractError(f"explanation {head.value} entropy must be normalized to [0, 1]")


def _check_fields(result: object, n_envs: int, sizes: Mapping[ActionHead, int]) -> ActionResult:
    """The stacked per-head fields of a ``get_action`` result have the seam's shapes and dtypes (a column per
    head, in ``HEAD_ORDER``); what is in them is ``_check_result``'s business."""
    if not isinstance(result, ActionResult):
        raise PolicyContractError(f"get_action() returned a {type(result).__name__}, expected ActionResult")
    heads = len(HEAD_ORDER)
    _shape("get_action() actions [batch, heads]", result.actions, (n_envs, heads), torch.int64)
    _shape("get_action() log_probs [batch, heads]", result.log_probs, (n_envs, heads))
    width = mask_width(sizes)
    _shape("get_action() masks [batch, heads, mask_width]", result.masks, (n_envs, heads, width), torch.bool)
    _shape("get_action() relevant [batch, heads]", result.relevant, (n_envs, heads), torch.bool)
    return result


def _check_result(
    result: ActionResult,
    encoded: EncodedObservations,
    hidden: HiddenState,
    sizes: Mapping[ActionHead, int],
) -> None:
    """Each head's column of the (already shape-checked) result: actions its mask allows, log-probs <= 0 and
    exactly 0 where the op ignores the head, leyline's relevance, and no padding column allowed."""
    n_envs = result.actions.shape[0]
    actions, masks = result.actions.cpu(), result.masks.cpu()
    log_probs, relevance = result.log_probs.cpu(), result.relevant.cpu()
    ops = actions[:, HEAD_INDEX[ActionHead.OP]]
    for column, head in enumerate(HEAD_ORDER):
        size = sizes[head]
        action, mask = actions[:, column], masks[:, column]
        log_prob, relevant = log_probs[:, column], relevance[:, column]
        if bool((action < 0).any()) or bool((action >= size).any()):
            raise PolicyContractError(f"get_action() {head.value} actions are outside [0, {size})")
        if bool(mask[:, size:].any()):
            raise PolicyContractError(f"get_action() {head.value} mask allows padding columns past its {size} actions")
        if not bool(mask.gather(1, action.unsqueeze(1)).all()):
            raise PolicyContractError(f"get_action() took a {head.value} action its own mask forbids")
        if not bool(torch.isfinite(log_prob).all()) or bool((log_prob > 0).any()):
            raise PolicyContractError(f"get_action() {head.value} log-probs must be finite and <= 0")
        if relevant.tolist() != [is_relevant(LifecycleOp(op), head) for op in ops.tolist()]:
            raise PolicyContractError(
                f"get_action() {head.value} relevance differs from leyline's CAUSAL_RELEVANCE for the chosen ops"
            )
        if bool((log_prob[~relevant] != 0).any()):
            raise PolicyContractError(f"get_action() {head.value} log-probs must be exactly 0 where the op ignores it")
    if not bool(encoded.masks.op.cpu().gather(1, ops.unsqueeze(1)).all()):
        raise PolicyContractError("get_action() chose an op the observation's op mask forbids")
    values = _shape("get_action() values", result.values, (n_envs,))
    if values.requires_grad or not bool(torch.isfinite(values).all()):
        raise PolicyContractError("get_action() values must be finite and carry no gradient")
    _check_hidden("get_action() hidden", result.hidden, n_envs, like=hidden)


def _check_parity(bundle: PolicyBundle, buffer: RolloutBuffer) -> None:
    """The stored steps, handed back as simic's update does, score as ``get_action`` scored them."""
    device = bundle.device
    evaluated = bundle.evaluate_actions(
        {name: value.to(device) for name, value in buffer.inputs.items()},
        buffer.actions.to(device),
        buffer.masks.to(device),
        (buffer.initial_hidden[0].to(device), buffer.initial_hidden[1].to(device)),
    )
    if not isinstance(evaluated, EvalResult):
        raise PolicyContractError(f"evaluate_actions() returned a {type(evaluated).__name__}, expected EvalResult")
    leading = tuple(buffer.valid.shape)
    per_head = (*leading, len(HEAD_ORDER))
    log_probs = _shape("evaluate_actions() log_probs [batch, time, heads]", evaluated.log_probs, per_head)
    entropies = _shape("evaluate_actions() entropy [batch, time, heads]", evaluated.entropy, per_head)
    scored, entropies = log_probs.detach().float().cpu(), entropies.detach().cpu()
    for column, head in enumerate(HEAD_ORDER):
        stored = buffer.log_probs[..., column]
        if not torch.allclose(scored[..., column], stored, rtol=PARITY_RTOL, atol=PARITY_ATOL):
            raise PolicyContractError(
                f"evaluate_actions() scores the stored {head.value} actions differently from get_action()"
            )
        entropy = entropies[..., column]
        if bool((entropy < 0).any()) or bool((entropy > 1 + PARITY_RTOL).any()):
            raise PolicyContractError(f"evaluate_actions() {head.value} entropy must be normalized to [0, 1]")
    values = _shape("evaluate_actions() values", evaluated.values, leading)
    if not torch.allclose(values.detach().float().cpu(), buffer.values, rtol=PARITY_RTOL, atol=PARITY_ATOL):
        raise PolicyContractError("evaluate_actions() values differ from the values get_action() returned")
    total = log_probs.sum() + values.sum()
    if not total.requires_grad:
        raise PolicyContractError("evaluate_actions() log-probs and values carry no gradient")
    total.backward()  # type: ignore[no-untyped-call]
    if all(parameter.grad is None for parameter in bundle.parameters()):
        raise PolicyContractError("evaluate_actions() is not differentiable with respect to parameters()")


def _check_round_trip(bundle: PolicyBundle, saved: dict[str, object]) -> None:
    """``load_state_dict`` restores what ``state_dict`` saved (and undoes the check's ``update_normalizer``)."""
    bundle.load_state_dict(copy.deepcopy(saved))
    if not _same(bundle.state_dict(), saved):
        raise PolicyContractError("state_dict() after load_state_dict(state) differs from state")


def _same(left: object, right: object) -> bool:
    if isinstance(left, torch.Tensor) and isinstance(right, torch.Tensor):
        return left.shape == right.shape and left.dtype == right.dtype and torch.equal(left.cpu(), right.cpu())
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(_same(left[key], right[key]) for key in left)
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right, strict=True))
    return left == right
