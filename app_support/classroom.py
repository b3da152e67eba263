"""Follow the teacher: a teacher's session opens a class with a short code; every view the teacher's
pages write to their URL (``url_state.Link.write``) is published to the class, and a student session
that follows the code opens the same view within about a second (a sidebar fragment polls the shared
state every ``POLL_SECONDS``). A student can branch off (stop following, keep exploring) and follow
again.

The classes live in the server's memory (``st.cache_resource``: shared by every session of this
server, lost when it restarts); a class unused for ``CLASS_TTL_SECONDS`` is closed.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlencode

import streamlit as st

#: Codes use letters and digits that cannot be misread on a projector (no 0/O, 1/I/L).
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 4
POLL_SECONDS = 1.0
CLASS_TTL_SECONDS = 6 * 3600
MAX_CLASSES = 100
#: The URL parameter a followed view carries (the class's version of it).
VIEW_PARAM = "class_view"


@dataclass
class ClassView:
    """What a class shows now: ``page`` (a script path) opened with ``params``; ``version`` counts the
    teacher's changes; ``lesson`` is the JSON of the lesson the teacher has open (or "")."""

    page: str = ""
    params: dict = field(default_factory=dict)
    version: int = 0
    lesson: str = ""
    touched: float = field(default_factory=time.time)


class Classes:
    """The open classes of this server, by code (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._classes: dict[str, ClassView] = {}

    def open(self) -> str:
        """A new class's code; old classes are closed first, and RuntimeError when ``MAX_CLASSES``
        are still open."""
        with self._lock:
            now = time.time()
            self._classes = {c: v for c, v in self._classes.items() if now - v.touched < CLASS_TTL_SECONDS}
            if len(self._classes) >= MAX_CLASSES:
                raise RuntimeError(f"{MAX_CLASSES} classes are open on this server; close one first")
            while (code := "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))) in self._classes:
                pass
            self._classes[code] = ClassView()
            return code

    def close(self, code: str) -> None:
        with self._lock:
            self._classes.pop(code, None)

    def publish(self, code: str, page: str, params: dict) -> None:
        """The teacher's view is now ``page`` with ``params`` (a new version when it changed)."""
        with self._lock:
            view = self._classes.get(code)
            if view is not None and (view.page, view.params) != (page, params):
                view.page, view.params, view.version, view.touched = page, dict(params), view.version + 1, time.time()

    def share_lesson(self, code: str, lesson: str) -> None:
        """The lesson (JSON) the teacher has open; the teacher's next view shows its step."""
        with self._lock:
            if code in self._classes:
                self._classes[code].lesson = lesson

    def view(self, code: str) -> ClassView | None:
        """A copy of the class's current view, or None when no class has that code."""
        with self._lock:
            view = self._classes.get(normalize(code))
            return None if view is None else replace(view, params=dict(view.params))


def normalize(code: str) -> str:
    """A typed code as the class's: upper case, spaces dropped."""
    return "".join(code.split()).upper()


@st.cache_resource
def classes() -> Classes:
    """The server's classes, shared by every session."""
    return Classes()


def teaching() -> str | None:
    """The code of the class this session teaches, or None."""
    return st.session_state.get("class_teach")


def publish(page: str, params: dict) -> None:
    """Publish this session's view to the class it teaches (nothing when it teaches none)."""
    if teaching():
        classes().publish(teaching(), page, params)


def share_lesson(lesson: str) -> None:
    """Give the class this session teaches the lesson (JSON) it has open (nothing when it teaches none)."""
    if teaching():
        classes().share_lesson(teaching(), lesson)


def class_lesson() -> str:
    """The lesson JSON of the class this session follows ("" when none)."""
    code = st.session_state.get("class_follow")
    view = classes().view(code) if code else None
    return view.lesson if view else ""


#: Opens a view the way the browser's Back button does: the new URL goes into the history and a
#: ``popstate`` event tells Streamlit's page to load it (it reruns that page with that query). Once per
#: class version, however often the component is drawn.
_OPEN_VIEW_JS = """
export default function (component) {
  const { data } = component;
  if (!data || !data.version || window.__interpLabClassView === data.version) { return; }
  window.__interpLabClassView = data.version;
  window.history.pushState(null, '', new URL(data.url, window.location.href));
  window.dispatchEvent(new PopStateEvent('popstate'));
}
"""
_open_view = st.components.v2.component("interp_lab.open_class_view", js=_OPEN_VIEW_JS)


def view_url(page: str, params: dict, version: int) -> str:
    """The URL, relative to the app's pages, of ``page`` (a script path such as ``pages/explore.py``)
    opened with ``params`` and the class's ``version`` of the view."""
    path = "./" if page == "app.py" else Path(page).stem
    return f"{path}?{urlencode({**params, VIEW_PARAM: str(version)})}"


@st.fragment(run_every=POLL_SECONDS)
def _follow(code: str) -> None:
    view = classes().view(code)
    if view is None:
        st.warning(f"Class {code} has ended.")
        return
    st.caption(f"Following class **{code}**: you see the teacher's view.")
    if view.version and view.version != st.session_state.get("class_seen"):
        # The browser opens the view (a page change asked for by the page itself, like a click on a
        # link); st.switch_page from this fragment left pages blank under load ("Bad delta path index").
        # The version makes the URL new to the page, so it applies the view even when it wrote those
        # very parameters itself earlier (url_state.Link.incoming ignores its own URLs). The view counts
        # as seen only once the page runs with its URL (class_sidebar): until then every poll draws the
        # component again, because a poll's run can be cut short by the next poll before its message
        # leaves the server (a class of thirty then lost views), and the browser opens each version once.
        _open_view(key="class_open_view", data={"url": view_url(view.page, view.params, view.version),
                                                 "version": view.version})


def _follow_class(code: str) -> None:
    """This session follows class ``code`` from the teacher's current view on."""
    st.session_state["class_follow"], st.session_state["class_branched"] = code, False
    st.session_state.pop("class_seen", None)


def class_sidebar() -> None:
    """The sidebar's class section: open or close a class (teacher), follow a code, branch off and
    follow again (student). A link's ``follow=CODE`` parameter follows that class."""
    state = st.session_state
    if "follow" in st.query_params:
        _follow_class(normalize(st.query_params["follow"]))
        del st.query_params["follow"]
    opened = st.query_params.get(VIEW_PARAM, "")
    if state.get("class_follow") and opened.isdigit():  # this run opens the class's view of that version
        state["class_seen"] = max(int(opened), state.get("class_seen", 0))
    with st.expander("Class", expanded=bool(teaching() or state.get("class_follow"))):
        if teaching():
            st.markdown(f"Class code **{teaching()}**")
            st.caption("Students type it here, or open this app with `?follow=" + teaching() + "`; they see every "
                       "view you open.")
            if st.button("End the class", key="class_end"):
                classes().close(teaching())
                state.pop("class_teach")
                st.rerun()
            return
        code = state.get("class_follow")
        if code and classes().view(code) is None:
            st.warning(f"No class has the code {code}.")
            state.pop("class_follow")
            code = None
        if code and not state.get("class_branched"):
            _follow(code)
            if st.button("Branch off", key="class_branch", help="stop following; explore on your own"):
                state["class_branched"] = True
                st.rerun()
            return
        if code:
            st.caption(f"You branched off class **{code}**.")
            if st.button("Follow again", key="class_refollow"):
                _follow_class(code)
                st.rerun()
            return
        typed = st.text_input("Class code", key="class_code_input", max_chars=8, placeholder="e.g. K7QD")
        c1, c2 = st.columns(2)
        if c1.button("Follow", key="class_follow_button") and normalize(typed):
            _follow_class(normalize(typed))
            st.rerun()
        if c2.button("Teach", key="class_open", help="open a class: students who follow its code see your views"):
            try:
                state["class_teach"] = classes().open()
            except RuntimeError as err:
                st.error(str(err))
            else:
                st.rerun()
