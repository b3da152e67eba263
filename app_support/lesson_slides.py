"""A lesson as slides (interp_core.services.slides): every step's view is computed the way its page
computes it (app_support/explore_runs.py, so results are shared with the Explore page and between
sessions) and put under the step's question and answer.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Callable
from urllib.parse import urlencode

from app_support.explore_runs import link_request, start_result, view_result
from app_support.lessons import Lesson, Step
from interp_core.services.slides import StepView, lesson_slides


def step_link(base: str, step: Step) -> str:
    """The address of ``step``'s view on the app at ``base`` (any page's URL of the app)."""
    return f"{base.rsplit('/', 1)[0]}/{PurePosixPath(step.page).stem}?{urlencode(step.params)}"


def step_view(step: Step, link: str) -> StepView:
    """``step`` with its view's result (``link`` its address); a view that cannot be computed gets
    notes saying why instead, and link settings that were not used are noted."""
    try:
        if step.page == "pages/random_start.py":
            result, ignored = start_result(step.params)
            notes = []
        else:
            request, x, ignored = link_request(step.params)
            result, notes = view_result(request, x)
    except ValueError as err:  # a link that cannot be recomputed, or settings the attack rejects
        return StepView(step.title, step.explain, step.predict, step.answer, link, None,
                        (f"This view could not be computed: {err}.",))
    if ignored:
        notes.append("Settings of the step's link that were not used: " + "; ".join(ignored))
    return StepView(step.title, step.explain, step.predict, step.answer, link, result, tuple(notes))


def lesson_file(lesson: Lesson, base: str, progress: Callable[[int, Step], None] | None = None) -> str:
    """The slides file (HTML text) of ``lesson``, its steps' links on the app at ``base``;
    ``progress(i, step)`` is called before step i (0-based) is computed."""
    views = []
    for i, step in enumerate(lesson.steps):
        if progress:
            progress(i, step)
        views.append(step_view(step, step_link(base, step)))
    return lesson_slides(lesson.title, views)
