"""The set-up every page runs first, whether opened from the sidebar or by a deep link such as
``/explore``: page config, the thread policy, the start-up precompute of the lessons' views (once
per server, app_support/precompute.py), and the sidebar navigation.

The pages live in ``pages/`` (Streamlit's multipage convention: a deep link runs that page's
script alone, without ``app.py``), so the set-up is a function each script calls, not code in the
entry script. Streamlit's own page list is hidden (``client.showSidebarNavigation = false``) in
favour of this one, which keeps titles and icons and the order below.
"""

from __future__ import annotations

import streamlit as st

from app_support.classroom import class_sidebar
from app_support.common import configure_once
from app_support.precompute import start_precompute

#: (script, title, icon, one-line description) of every page, in sidebar order.
PAGES = (
    ("app.py", "Home", ":material/home:", "what the app shows, guided demos"),
    ("pages/explore.py", "Explore", ":material/biotech:", "attack one image, compare maps and discrepancies"),
    ("pages/lesson.py", "Lesson", ":material/school:", "a playlist of views: predict, then reveal; a class follows"),
    ("pages/robustness.py", "Robustness", ":material/shield:", "accuracy and AAI Kendall τ against ε"),
    ("pages/random_start.py", "Random start", ":material/casino:", "the authors' PGD and a random start on one image"),
    ("pages/isa_tradeoff.py", "ISA trade-off", ":material/balance:", "1-/2-/all-class discrepancy vs ε; the bound"),
    ("pages/train.py", "Train", ":material/model_training:", "a small model in the background, live curves"),
    ("pages/about.py", "About", ":material/menu_book:", "methods, measures, references"),
)
#: An emoji, not a Material icon: the favicon must not be fetched from a font server (offline use).
PAGE_ICON = "🔬"


def setup_page(title: str) -> None:
    """First call of every page script: page config, one torch thread per session, the lessons' views
    precomputed (started by the server's first page run), sidebar links and the class section
    (follow the teacher)."""
    projector = st.query_params.get("present") == "1"  # a presentation link opens with the sidebar folded
    st.set_page_config(page_title=f"{title} · interp_core lab", page_icon=PAGE_ICON, layout="wide",
                       initial_sidebar_state="collapsed" if projector else "auto")
    configure_once()
    start_precompute()
    with st.sidebar:
        for script, label, icon, _ in PAGES:
            st.page_link(script, label=label, icon=icon)
        class_sidebar()
        st.divider()


def page_links() -> None:
    """The pages with their descriptions, for the home page's body."""
    for script, label, icon, about in PAGES[1:]:
        st.page_link(script, label=f"{label} — {about}", icon=icon)
