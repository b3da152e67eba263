"""interp_core: adversarial robustness and network interpretability, after Boopathy et al.,
"Proper Network Interpretability Helps Adversarial Robustness in Classification" (ICML 2020).

The package's layers: the core maths (``data``, ``models``, ``interpret``, ``metrics``,
``attacks``, ``training``, ``evaluate``, with ``io``, ``paths`` and ``runtime``), the app's
services on top (``services``: explore, figures, jobs) and the entry points (``cli``). The main
functions and classes are importable from here (``__all__``)::

    from interp_core import load_model, load_dataset, pgd, get_explainer, discrepancy

Glossary (one vocabulary across the package, the CLI and the app):

- ``x``: images, float32 tensor (N, C, H, W) with values in [0, 1]; ``y``: labels (N,) int64.
- ``logits`` / ``Z``: model outputs (N, K) for K classes.
- ``CAM``: class activation map, ``CAM_c = sum_k W[c, k] * A_k`` on the last feature map grid
  (h, w); the logit is its grid mean (docs/method.md#networks).
- ``map``: an interpretation map (N, 1, h, w) for one class per example, from an explainer.
- ``target``: the class an explainer explains, or the class a targeted attack aims for.
- ``eps``: radius of the threat model (l-inf or l2 ball around the clean image).
- ``distortion``: the budget of an unforeseen attack (fog, Gabor, snow, JPEG), on its own scale
  (each dataset's ``DatasetInfo.uar_budgets``; docs/method.md#uar).
- ``step_size``, ``steps``, ``random_start``, ``norm`` ("linf" / "l2"): attack settings.
- ``gamma``: weight of an interpretation-discrepancy term (ISA objective, Int training).
- ``distance`` ("l1", "l2" = root of the sum of squares, "sq_l2" = sum of squares): how two maps
  are compared in a discrepancy.
- ``D1`` / ``D2`` / all-class: the 1-class, 2-class and all-class discrepancies (section 4).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: The public API by module. ``import interp_core`` stays light (no torch): each name is imported
#: from its module on first use, e.g. ``interp_core.load_model``.
_API = {
    "interp_core.data": ("DATASETS", "DatasetNotFound", "ImageDataset", "load_dataset", "load_image_folder"),
    "interp_core.models": ("CAMNet", "CheckpointError", "ModelCard", "available_models", "build_model",
                           "eval_mode", "load_checkpoint", "load_model", "save_checkpoint", "smooth_copy"),
    "interp_core.interpret": ("EXPLAINERS", "Explainer", "explain_all_classes", "explain_classes", "get_explainer",
                              "upsample_to_input"),
    "interp_core.metrics": ("DISTANCES", "MEASURES", "accuracy", "best_other_class", "discrepancy", "kendall_tau",
                            "map_distance", "topk_intersection", "two_class_bound"),
    "interp_core.attacks": ("AAI", "ATTACKS", "ISA", "PGD", "Attack", "MinimumEps", "build_attack",
                            "fgsm", "isa_tradeoff", "minimum_eps", "paper_pgd", "pgd", "runner_up"),
    "interp_core.training": ("PRESETS", "TRAINING_METHODS", "TrainConfig", "config_to_args", "make_config", "train"),
    "interp_core.evaluate": ("aai_evaluation", "bound_evaluation", "evaluation_set", "isa_evaluation",
                             "robust_accuracy"),
    "interp_core.runtime": ("configure_threads", "resolve_device"),
}
_MODULE_OF = {name: module for module, names in _API.items() for name in names}
__all__ = ["__version__", *_MODULE_OF]


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'interp_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
