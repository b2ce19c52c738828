"""Errors shared by every Esper package, so callers can catch one family whatever raised it."""

from __future__ import annotations


class EsperError(Exception):
    """Base class of every error Esper raises on purpose."""


class InvalidStateMachineError(EsperError):
    """The lifecycle reached a state the contracts say is impossible (e.g. an all-false action-mask row).

    This is a bug in the caller's bookkeeping, never a condition to recover from silently.
    """


class InvalidTransitionError(InvalidStateMachineError):
    """A seed was asked to move between two stages the transition table does not connect."""


class InvalidSlotIdError(EsperError, ValueError):
    """A slot id is not of the form ``r{row}c{col}`` or is not in the slot config."""


class ConfigError(EsperError, ValueError):
    """A configuration value or key is invalid (unknown key, out-of-range value, wrong type)."""


class FeatureWidthError(EsperError, ValueError):
    """A policy input is missing, or does not have the name or width the policy was built for."""


class MaskShapeError(EsperError, ValueError):
    """An action mask does not have the shape of its head."""


class CheckpointError(EsperError):
    """A checkpoint is unreadable, truncated, or was written for another configuration."""


class NonFiniteError(EsperError, ArithmeticError):
    """A value that must be finite (policy logits, a loss, a gradient norm, a weight) is NaN or infinite."""


class PolicyContractError(EsperError):
    """A policy bundle breaks the ``PolicyBundle`` contract: a member returns the wrong type or shape, or
    ``evaluate_actions`` does not reproduce what ``get_action`` returned for the same steps."""
