"""Home: the question the app explores, what is available on this machine, and the way in."""

import streamlit as st

from interp_core import __version__, paths
from app_pages.common import DATASET_LABELS, device, full_data_source, model_table

st.title("Does a proper interpretation help robustness?")
st.markdown(
    """
An adversarial example changes a network's decision with a perturbation too small to see. Can it also
keep the network's **interpretation map** (CAM, Grad-CAM++, Integrated Gradients, …) unchanged, so that
inspecting the explanation would not reveal the attack? Boopathy et al. (ICML 2020) show that the answer
depends on how the two maps are compared: measured on the true class alone (1-class discrepancy), such
*interpretability sneaking attacks* seem to succeed; measured on the true **and** the target class
(2-class ℓ1), they cannot hide — the discrepancy is bounded below by half the logit gap ½(Z_y − Z_t).

The converse is the paper's second claim: training a network only to keep its interpretation stable under
perturbation (**Int**, no adversarial cross-entropy) already makes its *classification* robust,
competitive with PGD adversarial training and TRADES at large ε. This app lets you attack the authors'
networks and your own, watch maps and numbers move step by step, draw the robustness and trade-off
curves, and train small models yourself.
"""
)

st.subheader("Available here")
models = model_table()
c1, c2, c3 = st.columns(3)
with c1:
    st.markdown("**Datasets**")
    for name, label in DATASET_LABELS.items():
        source = full_data_source(name)
        full = f"; full test set from `{source}`" if source else ""
        st.markdown(f"- {label}: demo sample (300 test images){full}")
with c2:
    st.markdown("**Models**")
    by_source: dict[str, int] = {}
    for m in models:
        by_source[m["source"]] = by_source.get(m["source"], 0) + 1
    st.markdown("\n".join(f"- {n} {s}" for s, n in sorted(by_source.items())) or "- none found")
    st.caption(f"shipped: `{paths.checkpoints_dir()}` · runs: `{paths.runs_dir()}`")
with c3:
    st.markdown("**Compute**")
    st.markdown(f"- device: `{device()}`\n- interp_core {__version__}")

st.subheader("Pages")
st.page_link("app_pages/explore.py", label="Explore — attack one image, compare maps and discrepancies",
             icon=":material/biotech:")
st.page_link("app_pages/robustness.py", label="Robustness — accuracy and AAI Kendall τ against ε",
             icon=":material/shield:")
st.page_link("app_pages/isa_tradeoff.py", label="ISA trade-off — 1-/2-/all-class discrepancy vs ε; the bound",
             icon=":material/balance:")
st.page_link("app_pages/train.py", label="Train — a small model in the background, live curves",
             icon=":material/model_training:")
st.page_link("app_pages/about.py", label="About — methods, measures, references", icon=":material/menu_book:")

with st.expander("All models"):
    st.table([{k: m[k] for k in ("name", "dataset", "arch", "method", "source")}
              | {"clean accuracy": f"{m['metrics']['clean_accuracy']:.4f}"
                 if "clean_accuracy" in m["metrics"] else "—"}
              for m in models])
