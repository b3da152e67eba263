"""Sidebar widgets for an attack and its parameters, built from interp_core's attack registry, and
the function that turns the chosen settings into ``attack_fn(model, x, y, target, callback)``."""

from __future__ import annotations

from typing import Sequence

import streamlit as st

from interp_core.attacks import ATTACKS, build_attack

# How each parameter is shown: label, and for eps the dataset's usual scale (CIFAR in 1/255).
PARAM_LABELS = {"eps": "ε", "step_size": "step size", "steps": "steps", "gamma": "γ (discrepancy weight)",
                "kappa": "κ (margin)", "k": "top-k cells", "restarts": "restarts", "random_start": "random start"}
DEFAULT_EPS = {"mnist": 0.3, "cifar10": 8 / 255}


def attack_controls(dataset: str, class_names: Sequence[str], key: str) -> tuple[str, dict, int | None]:
    """Attack name, its parameters and the target class (None if the attack is untargeted)."""
    name = st.sidebar.selectbox("Attack", list(ATTACKS), key=f"{key}_attack")
    spec = ATTACKS[name]
    params = {}
    with st.sidebar.expander("Attack parameters", expanded=True):
        for param, default in spec.defaults(dataset).items():
            label = PARAM_LABELS.get(param, param)
            widget_key = f"{key}_{name}_{param}_{dataset}"
            if isinstance(default, bool):
                params[param] = st.checkbox(label, value=default, key=widget_key)
            elif isinstance(default, int):
                params[param] = int(st.number_input(label, min_value=0, max_value=spec.limits.get(param, 1000),
                                                    value=default, step=1, key=widget_key))
            elif param in ("eps", "step_size") and dataset == "cifar10" and spec.norm == "linf":
                params[param] = st.number_input(f"{label} (×1/255)", min_value=0.0, max_value=255.0,
                                                value=round(default * 255, 3), step=0.5, key=widget_key) / 255
            else:
                params[param] = st.number_input(label, min_value=0.0, value=float(default), format="%.4g",
                                                key=widget_key)
    target = None
    if spec.targeted:
        target = st.sidebar.selectbox("Target class", range(len(class_names)), format_func=lambda c: class_names[c],
                                      index=1, key=f"{key}_target")
    return name, params, target


def make_attack_fn(name: str, params: dict):
    """attack_fn(model, x, y, target, callback) -> x_adv for interp_core.explore."""
    attack = build_attack(name, **params)
    return lambda model, x, y, target, callback: attack(model, x, y, target, callback=callback)
