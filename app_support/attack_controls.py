"""Sidebar widgets for an attack and its parameters, built from ``interp_core.attacks.ATTACKS`` (one
widget per parameter the registry shows, typed by the builder's default). The chosen settings go
to ``interp_core.attacks.build_attack``, whose attacks all take the step callback. An attack's
budget widget comes first: eps in the dataset's usual units, or an unforeseen attack's distortion
on its own scale (``DISTORTION_UNITS``), starting at the authors' budget."""

from __future__ import annotations

import math
from typing import Sequence

import streamlit as st

from interp_core.attacks import ATTACKS, ISA_EXPLAINERS, NORMS
from interp_core.datasets import DATASETS
from interp_core.checks import BOUNDS
from interp_core.metrics import DISTANCES, MEASURES

DEFAULT_ATTACK = "pgd"
LABELS = {"eps": "ε", "step_size": "step size", "steps": "steps", "gamma": "γ (discrepancy weight)",
          "kappa": "κ (margin confidence)", "k": "top-k cells", "restarts": "restarts", "random_start": "random start",
          "seed": "seed", "measure": "discrepancy measure", "norm": "threat model", "distance": "discrepancy distance",
          "explainer": "map attacked", "step_scale": "step (share of ε)",
          "rounds": "search rounds", "distortion": "distortion", "search_gamma": "search γ"}
#: The scale of each unforeseen attack's distortion (docs/method.md#uar), shown with its widget.
DISTORTION_UNITS = {"fog": "fog weight, 0–255 scale", "gabor": "noise amplitude, 0–255 scale",
                    "snow": "weight of the snow layer", "jpeg-linf": "l∞ of the JPEG shifts, in ½ quantization steps",
                    "jpeg-l2": "l2 of the JPEG shifts, in ½ quantization steps",
                    "jpeg-l1": "l1 of the JPEG shifts, in ½ quantization steps"}
#: A distortion widget spans [0, DISTORTION_SPAN × the authors' budget].
DISTORTION_SPAN = 4
#: Choices of the string-valued settings (the explainer is shown for ISA only).
CHOICES = {"measure": list(MEASURES), "norm": list(NORMS), "distance": list(DISTANCES),
           "explainer": list(ISA_EXPLAINERS)}
#: Tighter upper ends than the library's, so that one click stays affordable on a shared machine.
AFFORDABLE = {"steps": 500, "restarts": 10, "rounds": 20, "k": 64, "seed": 2**31 - 1}


def widget_range(name: str, param: str, norm: str) -> tuple[float, float | None]:
    """(min, max) of the widget of attack ``name``'s parameter: the range interp_core checks
    (interp_core.checks.BOUNDS; an l-inf eps at most 1; a distortion at most DISTORTION_SPAN times
    the authors' budget), the upper end lowered to AFFORDABLE; max None: unbounded."""
    low, high = BOUNDS.get(param, (0.0, math.inf))
    if param == "eps" and norm == "linf":
        high = 1.0
    if param == "distortion":
        high = DISTORTION_SPAN * DATASETS["cifar10"].uar_budgets[name]
    high = min(high, AFFORDABLE.get(param, math.inf))
    return low, None if high == math.inf else high


def param_defaults(name: str, dataset: str) -> dict:
    """The builder's defaults of the parameters attack ``name`` shows, its budget first: where the
    builder has none, the dataset's usual eps, or the authors' distortion of an unforeseen attack
    (DatasetInfo.uar_budgets; the minimum-eps search keeps its own upper limit)."""
    spec = ATTACKS[name]
    record = DATASETS[dataset]
    usual = record.train_eps if spec.budget == "eps" else record.uar_budgets[name]
    return {spec.budget: usual, **spec.defaults}


def default_attack(dataset: str) -> tuple[str, dict]:
    """What the Explore page runs when nothing is changed: (name, params)."""
    return DEFAULT_ATTACK, param_defaults(DEFAULT_ATTACK, dataset)


def _unit(name: str, dataset: str, param: str, norm: str) -> tuple[float, str]:
    """(scale, label suffix) of a float widget: l-inf eps and step sizes are shown in the dataset's
    eps units (CIFAR-10: 1/255), as the paper writes them; a distortion names its scale."""
    if param == "distortion":
        return 1.0, f" ({DISTORTION_UNITS[name]})"
    scale = DATASETS[dataset].eps_scale
    if scale != 1 and norm == "linf" and param in ("eps", "step_size"):
        return float(scale), f" (×1/{scale})"
    return 1.0, ""


#: Where an attack's setting needs a word of advice beside its widget.
HINTS = {("isa", "search_gamma"): "as the authors: the largest γ that still reaches t (10 rounds of doubling and "
                                  "bisection in [0, 1]); the γ found is shown with the results",
         ("isa", "gamma"): "γ that works on MNIST: about 0.001–0.01 (0: a plain targeted attack; much larger: "
                           "the target is not reached and the attack returns the clean image)",
         ("min-eps", "eps"): "the upper limit of the search; the ε it finds is shown with the results"}


#: Settings asked for only while another setting has a given value: γ is not asked for while it is searched.
SHOWN_WHEN = {"gamma": ("search_gamma", False)}


def asked_for(param: str, values: dict) -> bool:
    """Whether setting ``param`` is asked for, given the settings ``values`` chosen before it
    (``SHOWN_WHEN``): a setting whose control is set otherwise is not, so its builder's default holds."""
    control, shown_value = SHOWN_WHEN.get(param, (None, None))
    return control not in values or values[control] == shown_value


def param_key(key: str, name: str, dataset: str, param: str) -> str:
    """Session-state key of the widget of setting ``param`` of attack ``name``."""
    return f"{key}_{name}_{dataset}_{param}"


def param_fields(name: str, dataset: str, key: str) -> dict[str, tuple[str, object, object]]:
    """For a link (app_support.url_state): per setting of attack ``name``, its widget's key, a value
    of the widget's type (bool, str, int or float, in the units the widget shows) and its allowed
    values (a list, or a predicate)."""
    fields = {}
    for param, default in param_defaults(name, dataset).items():
        if isinstance(default, bool):
            allowed = (True, False)
        elif isinstance(default, str):
            allowed = CHOICES[param]
        elif isinstance(default, int):
            allowed = (lambda v, ends=widget_range(name, param, "linf"): ends[0] <= v <= (ends[1] or math.inf))
        else:  # the upper end depends on the threat model: attack_controls pulls a value above it down
            allowed, default = (lambda v, low=widget_range(name, param, "l2")[0]: v >= low), float(default or 0.0)
        fields[param] = (param_key(key, name, dataset, param), default, allowed)
    return fields


def widget_default(name: str, dataset: str, param: str, norm: str) -> object:
    """The value the widget of attack ``name``'s setting ``param`` starts at, in the units it shows."""
    default = param_defaults(name, dataset)[param]
    if isinstance(default, (bool, str, int)):
        return default
    return round((default or 0.0) * _unit(name, dataset, param, norm)[0], 6)


def attack_params(name: str, dataset: str, shown: dict) -> dict:
    """The parameters attack ``name`` is built with (``build_attack``) from the values its widgets
    show: ``shown`` maps a setting to a value in its widget's units (as a link carries it); a setting
    left out takes its widget's default (``widget_default``). Numbers are pulled into the widget's
    range (as ``attack_controls`` pulls a linked value), floats divided by their unit's scale (0 for
    a derived setting means derived: None), and a setting not asked for (``SHOWN_WHEN``) is left
    out, so its builder's default holds."""
    defaults = param_defaults(name, dataset)
    norm = shown.get("norm", defaults.get("norm", "linf"))
    params: dict = {}
    for param, default in defaults.items():
        if not asked_for(param, params):
            continue
        value = shown.get(param, widget_default(name, dataset, param, norm))
        if isinstance(default, (bool, str)):
            params[param] = value
            continue
        low, high = widget_range(name, param, norm)
        scale = 1.0 if isinstance(default, int) else _unit(name, dataset, param, norm)[0]
        value = min(max(value, low * scale), math.inf if high is None else high * scale)
        if isinstance(default, int):
            params[param] = int(value)
        else:
            params[param] = None if default is None and value == 0 else value / scale
    return params


def _clamp_state(wkey: str, low: float, high: float | None) -> None:
    """A number put in a widget's state from outside it (a link, the other threat model's range) is
    pulled into the widget's range [low, high] before the widget is drawn."""
    value = st.session_state.get(wkey)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        inside = max(value, low) if high is None else min(max(value, low), high)
        if inside != value:
            st.session_state[wkey] = type(value)(inside)


def attack_controls(dataset: str, class_names: Sequence[str], key: str,
                    expanded: bool = True) -> tuple[str, dict, int | None]:
    """Attack name, its parameters and the target class (None: untargeted, or the runner-up class);
    the parameters' expander is open unless ``expanded`` is False (presentation mode)."""
    names = list(ATTACKS)
    name = st.sidebar.selectbox("Attack", names, index=names.index(DEFAULT_ATTACK), key=f"{key}_attack",
                                format_func=lambda n: ATTACKS[n].label, help=ATTACKS[DEFAULT_ATTACK].description)
    spec = ATTACKS[name]
    st.sidebar.caption(spec.description)
    shown: dict = {}  # each widget's value, in the units it shows
    with st.sidebar.expander("Attack parameters", expanded=expanded):
        defaults = param_defaults(name, dataset)
        # the threat model chosen (its widget may come after eps): it sets eps's range and unit
        norm = st.session_state.get(f"{key}_{name}_{dataset}_norm", defaults.get("norm", "linf"))
        for param, default in defaults.items():
            if not asked_for(param, shown):
                continue
            label, wkey = LABELS.get(param, param), param_key(key, name, dataset, param)
            if (name, param) in HINTS:
                st.caption(HINTS[name, param])
            if isinstance(default, bool):
                shown[param] = st.checkbox(label, value=default, key=wkey)
            elif isinstance(default, str):
                options = CHOICES[param]
                shown[param] = st.selectbox(label, options, index=options.index(default), key=wkey)
                norm = shown[param] if param == "norm" else norm
            elif isinstance(default, int):
                low, high = widget_range(name, param, norm)
                _clamp_state(wkey, low, high)
                shown[param] = int(st.number_input(label, min_value=int(low), max_value=None if high is None else
                                                   int(high), value=default, step=1, key=wkey))
            else:  # a float, or None for "derived" (the PGD step size)
                scale, unit = _unit(name, dataset, param, norm)
                auto = " (0: 2.5 ε / steps)" if default is None else ""
                low, high = widget_range(name, param, norm)
                low, high = low * scale, None if high is None else high * scale
                _clamp_state(wkey, low, high)
                shown[param] = st.number_input(f"{label}{unit}{auto}", min_value=float(low),
                                               max_value=None if high is None else float(high),
                                               value=widget_default(name, dataset, param, norm), format="%.4g",
                                               key=wkey)
    params = attack_params(name, dataset, shown)
    target = None
    if spec.targeted:
        choice = st.sidebar.selectbox("Target class", ["runner-up"] + list(class_names), key=f"{key}_target",
                                      help="runner-up: the clean image's highest-scoring wrong class")
        target = None if choice == "runner-up" else list(class_names).index(choice)
    return name, params, target

