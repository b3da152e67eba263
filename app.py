"""The interp_core lab in the browser: ``streamlit run app.py`` (or ``make run``). This is the entry
script and the home page: the question the app explores, what is available here, and the way in.
The other pages are the scripts in ``pages/``; every page starts with ``setup_page``
(app_support/layout.py), so a deep link gets the same set-up.
"""

import streamlit as st

from interp_core import __version__, paths
from app_support.common import DATASET_LABELS, device, full_data_source, model_table
from app_support.demos import DEMOS
from app_support.layout import page_links, setup_page

setup_page("Home")

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
perturbation (**Int**, no adversarial cross-entropy) already makes its *classification* robust. On MNIST up
to ε = 0.3 most of that survives a strong re-test (the authors' Int: 0.790 under their PGD, 0.755 after a
random start and Square, on 200 test images; PGD adversarial training 0.890 / 0.885). The paper also finds
Int competitive with PGD adversarial training and TRADES at larger ε; that number comes from a PGD that
starts at the clean image and stalls, and one random start removes it (Int 0.180 → 0.005 at ε = 0.35):
the demo *Robust, or an attack that stalls?* shows why on one image, and every robustness number in this
app stands beside its re-test. This app lets you attack the authors' networks and your own, watch maps and
numbers move step by step, draw the robustness and trade-off curves, and train small models yourself.
"""
)

st.subheader("Guided demos")
st.markdown("One click opens a page with every setting filled and the attack run, on an image where it "
            "was measured to work (about 1 to 13 s of computing on a busy 2-core CPU).")
available = {m["name"] for m in model_table()}
for row in range(0, len(DEMOS), 2):
    for col, demo in zip(st.columns(2), DEMOS[row:row + 2]):
        with col.container(border=True):
            st.markdown(f"**{demo.title}**")
            st.markdown(demo.look_for)
            st.caption(demo.works_on)
            missing = [m for m in demo.models if m not in available]
            st.page_link(demo.page, label="Open this demo", icon=demo.icon, query_params=demo.params,
                         disabled=bool(missing), help=f"needs {', '.join(missing)}" if missing else None)

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
    st.caption(f"shipped: `{paths.display(paths.checkpoints_dir())}` · runs: `{paths.display(paths.runs_dir())}`")
with c3:
    st.markdown("**Compute**")
    st.markdown(f"- device: `{device()}`\n- interp_core {__version__}")

st.subheader("Pages")
page_links()

with st.expander("All models"):
    st.table([{k: m[k] for k in ("name", "dataset", "arch", "method", "source")}
              | {"clean accuracy": f"{m['metrics']['clean_accuracy']:.4f}"
                 if "clean_accuracy" in m["metrics"] else "—"}
              for m in models])
