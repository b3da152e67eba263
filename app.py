"""The interp_core lab in the browser: ``streamlit run app.py`` (or ``make run``).

Navigation over the page scripts in ``pages/``; every page is widgets -> one cached call into
``interp_core`` -> render. Nothing here computes anything.
"""

import streamlit as st

from pages.common import configure_once

st.set_page_config(page_title="interp_core lab", page_icon="🔍", layout="wide")
configure_once()

PAGES = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/explore.py", title="Explore", icon="🔬", url_path="explore"),
    st.Page("pages/robustness.py", title="Robustness", icon="🛡️", url_path="robustness"),
    st.Page("pages/isa_tradeoff.py", title="ISA trade-off", icon="⚖️", url_path="isa"),
    st.Page("pages/train.py", title="Train", icon="🏋️", url_path="train"),
    st.Page("pages/about.py", title="About", icon="📖", url_path="about"),
]
st.navigation(PAGES).run()
