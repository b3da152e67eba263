"""Model registry: the paper's architectures, self-describing checkpoints, and every model the
project can find (shipped checkpoints, the paper's networks, the user's runs), by name."""

from interp_core.models.architectures import (
    ACTIVATIONS,
    ARCHITECTURES,
    INITS,
    CAMNet,
    cam_from_features,
    eval_mode,
    init_authors_,
    smooth_copy,
)
from interp_core.models.checkpoint import (
    CheckpointError,
    ModelCard,
    build_model,
    load_checkpoint,
    read_card,
    save_checkpoint,
)
from interp_core.models.paper import load_paper_network
from interp_core.models.registry import ModelEntry, available_models, load_model

__all__ = [
    "ACTIVATIONS", "ARCHITECTURES", "INITS", "CAMNet", "cam_from_features", "eval_mode", "init_authors_", "smooth_copy",
    "CheckpointError", "ModelCard", "build_model",
    "load_checkpoint", "read_card", "save_checkpoint", "load_paper_network", "ModelEntry",
    "available_models", "load_model",
]
