"""Lesson page: a playlist of app views taught step by step (app_support/lessons.py). Each step
shows its explanation and a question; the class predicts, then the teacher reveals the measured
answer and opens the view. The guided demos ship as the first lesson; a teacher saves a lesson to a
JSON file, loads one, or adds a step from any share link, and exports the lesson as slides
(app_support/lesson_slides.py). In a class (sidebar, app_support/classroom.py)
the students see the teacher's step and every view the teacher opens.
"""

from urllib.parse import parse_qsl, urlparse

import streamlit as st

from app_support import classroom
from app_support.layout import setup_page
from app_support.lesson_slides import lesson_file
from app_support.lessons import LESSONS, VIEW_PAGES, Lesson, Step
from app_support.url_state import Link
from app_support.precompute import precompute_note

setup_page("Lesson")

#: The URL parameter value of a lesson loaded from a file or built here (shared with a class).
OWN = "own"


def own_lesson() -> Lesson | None:
    """The lesson loaded or built in this session, else the one the followed class's teacher shares."""
    text = st.session_state.get("lesson_own") or classroom.class_lesson()
    return Lesson.from_json(text) if text else None


def step_from_link(url: str, title: str, explain: str, predict: str, answer: str) -> Step:
    """A lesson step from a share link of a view page (its path names the page, its query the view)."""
    parsed = urlparse(url.strip())
    page = f"pages/{parsed.path.strip('/').split('/')[-1]}.py"
    if page not in VIEW_PAGES:
        raise ValueError(f"{url!r} is not a link of the Explore or Random start page")
    params = dict(parse_qsl(parsed.query))
    params.pop(classroom.VIEW_PARAM, None)
    return Step(title or "A view", page, {**params, "run": "1"}, explain, predict, answer)


def _open_own(text: str, at: int) -> None:
    """Make ``text`` this session's own lesson and show its step ``at`` on the next run (the lesson
    picker is drawn already, so its value is set before it is drawn again)."""
    st.session_state["lesson_own"], st.session_state["lesson_open"] = text, at
    st.rerun()


st.title("Lesson")
if note := precompute_note():
    st.caption(note)
if "lesson_open" in st.session_state:
    st.session_state["lesson_key"], st.session_state["lesson_step"] = OWN, st.session_state.pop("lesson_open")
    st.session_state["lesson_reveal"] = False
link = Link("lesson")
incoming = link.incoming() or {}
mine = own_lesson()
choices = list(LESSONS) + ([OWN] if mine else [])
link.take(incoming, "lesson", "lesson_key", options=choices)
link.take(incoming, "step", "lesson_step", like=0, options=lambda i: i >= 1)
link.take(incoming, "reveal", "lesson_reveal", like=False)
if link.ignored:
    st.warning("Some settings of the link were not used: " + "; ".join(link.ignored))

key = st.radio("Lesson", choices, horizontal=True, key="lesson_key",
               format_func=lambda k: mine.title + " (yours)" if k == OWN else LESSONS[k].title)
lesson = mine if key == OWN else LESSONS[key]
count = len(lesson.steps)
st.session_state["lesson_step"] = min(max(int(st.session_state.get("lesson_step", 1)), 1), count)
index = st.session_state["lesson_step"]


def _go(to: int) -> None:
    st.session_state["lesson_step"], st.session_state["lesson_reveal"] = to, False


c1, c2, c3 = st.columns([1, 1, 4])
c1.button("Previous", key="lesson_previous", disabled=index == 1, on_click=_go, args=(index - 1,),
          icon=":material/arrow_back:")
c2.button("Next", key="lesson_next", disabled=index == count, on_click=_go, args=(index + 1,),
          icon=":material/arrow_forward:")
c3.progress(index / count, text=f"Step {index} of {count}")

step = lesson.steps[index - 1]
with st.container(border=True):
    st.subheader(step.title)
    st.markdown(step.explain)
    st.info(f"**Predict first.** {step.predict}", icon=":material/psychology:")
    revealed = st.toggle("Reveal", key="lesson_reveal", help="the measured answer, and the view to open")
    if revealed:
        st.success(f"**Measured.** {step.answer}", icon=":material/fact_check:")
        st.page_link(step.page, label="Open this view (the attack runs)", icon=":material/open_in_new:",
                     query_params=step.params)

if key == OWN:
    classroom.share_lesson(lesson.to_json())  # before the view: a student's page then finds its lesson
link.write({"lesson": key, "step": index, "reveal": revealed})

with st.expander("Slides of this lesson (HTML, prints as PDF)"):
    st.markdown("One file for a projector or a handout: a title slide, then per step its question and its answer "
                "with the view's images, maps and numbers, computed here as the step's page computes them (a long "
                "lesson takes minutes). Open it in any browser, offline: arrow keys or the buttons move between "
                "slides; print it (or save it as PDF) for one slide per page.")
    if st.button("Make the slides", key="lesson_slides_make", icon=":material/slideshow:"):
        bar = st.progress(0.0)
        made = lesson_file(lesson, st.context.url or "lesson", lambda i, s: bar.progress(
            i / count, text=f"Computing step {i + 1} of {count}: {s.title}…"))
        bar.empty()
        st.session_state["lesson_slides"] = (lesson.to_json(), made)
    if st.session_state.get("lesson_slides", ("",))[0] == lesson.to_json():
        st.download_button("Download the slides (HTML)", st.session_state["lesson_slides"][1],
                           file_name="lesson-slides.html", mime="text/html", key="lesson_slides_download",
                           icon=":material/download:", on_click="ignore")

with st.expander("Save, load or build a lesson"):
    st.download_button("Save this lesson (JSON)", lesson.to_json(), file_name="lesson.json",
                       mime="application/json", key="lesson_save")
    upload = st.file_uploader("Load a lesson (JSON)", type=["json"], key="lesson_upload")
    if upload is not None and st.session_state.get("lesson_upload_id") != upload.file_id:
        st.session_state["lesson_upload_id"] = upload.file_id
        try:
            loaded = Lesson.from_json(upload.getvalue())
        except ValueError as err:
            st.error(f"{upload.name} is not a lesson: {err}. Nothing was changed.")
        else:
            _open_own(loaded.to_json(), 1)
    st.markdown("**Add a step** from a share link (open a view on the Explore or Random start page and copy "
                "its address): it goes to the end of your own lesson, which starts as a copy of this one.")
    with st.form("lesson_add", clear_on_submit=True):
        url = st.text_input("Share link", placeholder="http://localhost:8501/explore?dataset=mnist&image=8&...",
                            key="lesson_add_url")
        title = st.text_input("Title", key="lesson_add_title")
        explain = st.text_area("What the class sees", height=68, key="lesson_add_explain")
        predict = st.text_input("The question before the result", key="lesson_add_predict")
        answer = st.text_input("The answer (what you measured)", key="lesson_add_answer")
        if st.form_submit_button("Add the step"):
            try:
                new = step_from_link(url, title, explain, predict, answer)
            except ValueError as err:
                st.error(str(err))
            else:
                base = mine or lesson
                built = Lesson(base.title if mine else f"{lesson.title} (yours)", (*base.steps, new))
                _open_own(built.to_json(), len(built.steps))
