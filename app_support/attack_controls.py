"""Sidebar widgets for an attack and its parameters, built from ``interp_core.attacks.ATTACKS`` (one
widget per parameter the registry shows, typed by the builder's default). The chosen settings go
to ``interp_core.attacks.build_attack``, whose attacks all take the step callback. An attack's
budget widget comes first: eps in the dataset's usual units, or an unforeseen attack's distortion
on its own scale (``DISTORTION_UNITS``), starting at the authors' budget."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import streamlit as st

from interp_core.attacks import ATTACKS, ISA_EXPLAINERS, NORMS
from interp_core.datasets import DATASETS
from interp_core.checks import BOUNDS
from interp_core.metrics import DISTANCES, MEASURES

from app_support.url_state import decode

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


def _clamped(value, low: float, high: float | None):
    """A number pulled into [low, high] (``high`` None: no upper end), keeping its type."""
    return type(value)(max(value, low) if high is None else min(max(value, low), high))


def _clamp_state(wkey: str, low: float, high: float | None) -> None:
    """A number put in a widget's state from outside it (a link, the other threat model's range) is
    pulled into the widget's range [low, high] before the widget is drawn."""
    value = st.session_state.get(wkey)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and _clamped(value, low, high) != value:
        st.session_state[wkey] = _clamped(value, low, high)


#: ``ask(param, default, start, low, high, norm)``: the value of setting ``param`` as its widget gives it, in
#: the units the widget shows; ``default`` the builder's default, ``start`` the widget's initial value,
#: [low, high] its range (None for a bool or a choice, ``high`` None: unbounded), ``norm`` the threat model.
Ask = Callable[[str, object, object, float | None, float | None, str], object]


def settings(name: str, dataset: str, norm: str, ask: Ask) -> dict:
    """Attack ``name``'s parameters for ``dataset`` in the sidebar's order, each read with ``ask``
    (the widget, or a link's value): ints as ints, floats back from the widget's units (0 for a
    "derived" default is None), a setting left out while SHOWN_WHEN says so. ``norm`` is the threat
    model chosen before its own widget is read (it sets eps's range and unit)."""
    params: dict = {}
    for param, default in param_defaults(name, dataset).items():
        control, shown_value = SHOWN_WHEN.get(param, (None, None))
        if control in params and params[control] != shown_value:
            continue  # not asked for: the builder's default holds
        if isinstance(default, (bool, str)):
            params[param] = ask(param, default, default, None, None, norm)
            norm = params[param] if param == "norm" else norm
        elif isinstance(default, int):
            low, high = widget_range(name, param, norm)
            params[param] = int(ask(param, default, default, int(low), None if high is None else int(high), norm))
        else:  # a float, or None for "derived" (the PGD step size)
            scale, _ = _unit(name, dataset, param, norm)
            low, high = widget_range(name, param, norm)
            value = ask(param, default, round((default or 0.0) * scale, 6), float(low * scale),
                        None if high is None else float(high * scale), norm)
            params[param] = None if default is None and value == 0 else value / scale
    return params


def link_settings(name: str, dataset: str, values: dict[str, str]) -> dict:
    """The parameters ``attack_controls`` gives once a link's ``values`` (URL text in the widgets'
    units) are in the widgets (the others at their defaults), computed without drawing them. Raises
    ValueError for a value the widget would not accept (a page ignores such a value and says so)."""
    fields = param_fields(name, dataset, "")

    def ask(param, default, start, low, high, norm):
        if param not in values:
            return start
        _, like, allowed = fields[param]
        value = decode(values[param], like)
        if not (allowed(value) if callable(allowed) else value in allowed):
            raise ValueError(f"{param}={values[param]} is not allowed for {name}")
        return value if low is None else _clamped(value, low, high)

    defaults = param_defaults(name, dataset)
    return settings(name, dataset, values.get("norm", defaults.get("norm", "linf")), ask)


def attack_controls(dataset: str, class_names: Sequence[str], key: str,
                    expanded: bool = True) -> tuple[str, dict, int | None]:
    """Attack name, its parameters and the target class (None: untargeted, or the runner-up class);
    the parameters' expander is open unless ``expanded`` is False (presentation mode)."""
    names = list(ATTACKS)
    name = st.sidebar.selectbox("Attack", names, index=names.index(DEFAULT_ATTACK), key=f"{key}_attack",
                                format_func=lambda n: ATTACKS[n].label, help=ATTACKS[DEFAULT_ATTACK].description)
    spec = ATTACKS[name]
    st.sidebar.caption(spec.description)

    def widget(param, default, start, low, high, norm):
        label, wkey = LABELS.get(param, param), param_key(key, name, dataset, param)
        if (name, param) in HINTS:
            st.caption(HINTS[name, param])
        if isinstance(default, bool):
            return st.checkbox(label, value=default, key=wkey)
        if isinstance(default, str):
            options = CHOICES[param]
            return st.selectbox(label, options, index=options.index(default), key=wkey)
        _clamp_state(wkey, low, high)
        if isinstance(default, int):
            return st.number_input(label, min_value=low, max_value=high, value=default, step=1, key=wkey)
        _, unit = _unit(name, dataset, param, norm)
        auto = " (0: 2.5 ε / steps)" if default is None else ""
        return st.number_input(f"{label}{unit}{auto}", min_value=low, max_value=high, value=start, format="%.4g",
                               key=wkey)

    with st.sidebar.expander("Attack parameters", expanded=expanded):
        # the threat model chosen (its widget may come after eps): it sets eps's range and unit
        norm = st.session_state.get(param_key(key, name, dataset, "norm"),
                                    param_defaults(name, dataset).get("norm", "linf"))
        params = settings(name, dataset, norm, widget)
    target = None
    if spec.targeted:
        choice = st.sidebar.selectbox("Target class", ["runner-up"] + list(class_names), key=f"{key}_target",
                                      help="runner-up: the clean image's highest-scoring wrong class")
        target = None if choice == "runner-up" else list(class_names).index(choice)
    return name, params, target

