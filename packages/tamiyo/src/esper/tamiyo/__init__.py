"""Tamiyo: observation encoding, action masks, the factored recurrent policy and its bundle, the policy registry
and factory, and the controllers that are not learned (heuristic, fixed schedules, random-valid, static).

Importing this package registers nothing: call ``register_builtin_policies()`` once before ``create_policy``.
"""

from esper.tamiyo.encoding.feature_layout import (
    BASE_FEATURES,
    BASE_LAYOUT,
    FEATURE_SCHEMA_VERSION,
    NUM_BLUEPRINT_EMBEDDINGS,
    SLOT_FEATURES,
    SLOT_LAYOUT,
    feature_dim,
    slot_block,
)
from esper.tamiyo.encoding.features import FeatureBatch, encode_features
from esper.tamiyo.encoding.masks import MaskArrays, build_action_masks, build_mask_arrays
from esper.tamiyo.policy.factory import create_policy, create_policy_from_config
from esper.tamiyo.policy.lstm_bundle import COMPILE_MODES, LSTMPolicyBundle, MLPPolicyBundle
from esper.tamiyo.policy.network import FactoredRecurrentActorCritic, NetworkSizes
from esper.tamiyo.policy.registry import (
    RegistrablePolicy,
    get_policy_class,
    list_policies,
    register_builtin_policies,
    register_policy,
    unregister_policy,
)
from esper.tamiyo.rules.baselines import RandomValidController, StaticController
from esper.tamiyo.rules.decisions import Decision, DecisionReason
from esper.tamiyo.rules.heuristic import DEFAULT_ROTATIONS, HeuristicConfig, HeuristicController, HeuristicEnvState
from esper.tamiyo.rules.schedule import SCHEDULE_PREFIX, ScheduleController
from esper.tamiyo.rules.tracker import SignalTracker, TrackerConfig, TrackerSignals

__all__ = [
    "BASE_FEATURES",
    "BASE_LAYOUT",
    "COMPILE_MODES",
    "DEFAULT_ROTATIONS",
    "FEATURE_SCHEMA_VERSION",
    "NUM_BLUEPRINT_EMBEDDINGS",
    "SCHEDULE_PREFIX",
    "SLOT_FEATURES",
    "SLOT_LAYOUT",
    "Decision",
    "DecisionReason",
    "FactoredRecurrentActorCritic",
    "FeatureBatch",
    "HeuristicConfig",
    "HeuristicController",
    "HeuristicEnvState",
    "LSTMPolicyBundle",
    "MLPPolicyBundle",
    "MaskArrays",
    "NetworkSizes",
    "RandomValidController",
    "RegistrablePolicy",
    "ScheduleController",
    "SignalTracker",
    "StaticController",
    "TrackerConfig",
    "TrackerSignals",
    "build_action_masks",
    "build_mask_arrays",
    "create_policy",
    "create_policy_from_config",
    "encode_features",
    "feature_dim",
    "get_policy_class",
    "list_policies",
    "register_builtin_policies",
    "register_policy",
    "slot_block",
    "unregister_policy",
]
