"""interp_core: adversarial robustness and network interpretability, after Boopathy et al.,
"Proper Network Interpretability Helps Adversarial Robustness in Classification" (ICML 2020).

Glossary (one vocabulary across the package, the CLI and the app):

- ``x``: images, float32 tensor (N, C, H, W) with values in [0, 1]; ``y``: labels (N,) int64.
- ``logits`` / ``Z``: model outputs (N, K) for K classes.
- ``CAM``: class activation map, ``CAM_c = sum_k W[c, k] * A_k`` on the last feature map grid
  (h, w); the logit is its grid mean (PAPER.md section 2).
- ``map``: an interpretation map (N, 1, h, w) for one class per example, from an explainer.
- ``target``: the class an explainer explains, or the class a targeted attack aims for.
- ``eps``: radius of the threat model (l-inf or l2 ball around the clean image).
- ``step_size``, ``steps``, ``random_start``, ``norm`` ("linf" / "l2"): attack settings.
- ``gamma``: weight of an interpretation-discrepancy term (ISA objective, Int training).
- ``D1`` / ``D2`` / all-class: the 1-class, 2-class and all-class discrepancies (section 4).
"""

__version__ = "0.1.0"
