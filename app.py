"""The interp_core lab in the browser: ``streamlit run app.py`` (or ``make run``).

Navigation over the page scripts in ``app_pages/``; every page is widgets -> one cached call into
``interp_core`` -> render. Nothing here computes anything. (The folder is not called ``pages/``:
Streamlit treats a ``pages/`` folder as a legacy multipage app and would route deep links such as
``/explore`` straight to the page script, past this file's navigation and set-up.)
"""

import streamlit as st

from app_pages.common import configure_once

st.set_page_config(page_title="interp_core lab", page_icon=":material/biotech:", layout="wide")
configure_once()

PAGES = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/explore.py", title="Explore", icon=":material/biotech:", url_path="explore"),
    st.Page("app_pages/robustness.py", title="Robustness", icon=":material/shield:", url_path="robustness"),
    st.Page("app_pages/isa_tradeoff.py", title="ISA trade-off", icon=":material/balance:", url_path="isa"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("app_pages/about.py", title="About", icon=":material/menu_book:", url_path="about"),
]
st.navigation(PAGES).run()
