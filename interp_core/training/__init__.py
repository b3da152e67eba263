"""Robust training (docs/method.md#training): one loss function per method, registered by name in
``TRAINING_METHODS``, and one trainer (``train``) that owns the optimizer, the lr and eps-ramp
schedules, progress callbacks, the stop flag and checkpoints. Presets: ``PRESETS`` / ``make_config``."""

from interp_core.training.methods import (
    ADVERSARIAL,
    DEFAULT_GAMMA,
    FREE_METHODS,
    TRAINING_METHODS,
    FreePerturbation,
    MethodConfig,
    cam_discrepancy,
    get_method,
    ig_ce,
    inner_attack,
)
from interp_core.training.schedules import PRESETS, TrainConfig, cli_flag, config_to_args, make_config
from interp_core.training.trainer import (
    CatastrophicOverfitting,
    OverfitProbe,
    TrainingDiverged,
    TrainingHalted,
    TrainResult,
    heldout_metrics,
    previous_state_path,
    state_path,
    train,
)

__all__ = [
    "ADVERSARIAL", "DEFAULT_GAMMA", "FREE_METHODS", "TRAINING_METHODS", "FreePerturbation", "MethodConfig",
    "cam_discrepancy", "get_method", "ig_ce", "inner_attack", "PRESETS", "TrainConfig", "cli_flag", "config_to_args",
    "make_config", "TrainingDiverged", "TrainingHalted", "CatastrophicOverfitting", "OverfitProbe", "TrainResult",
    "heldout_metrics", "previous_state_path", "state_path", "train",
]
