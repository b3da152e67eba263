"""Lesson files and the classes a teacher opens (app_support/lessons.py, app_support/classroom.py)."""

import json
import sys

import pytest

from interp_core import paths

sys.path.insert(0, str(paths.PROJECT_ROOT))
from app_support import classroom  # noqa: E402
from app_support.demos import DEMOS  # noqa: E402
from app_support.lessons import GUIDED, MAX_LESSON_BYTES, Lesson  # noqa: E402


def test_the_guided_lesson_is_the_demos_in_order_and_survives_its_file():
    assert [s.params for s in GUIDED.steps] == [d.params for d in DEMOS]
    assert all(s.predict and s.answer and s.explain for s in GUIDED.steps)
    assert Lesson.from_json(GUIDED.to_json()) == GUIDED
    assert Lesson.from_json(GUIDED.to_json().encode()) == GUIDED


def _with(**step) -> str:
    good = json.loads(GUIDED.to_json())
    good["steps"][0].update(step)
    return json.dumps(good)


@pytest.mark.parametrize("text, message", [
    ("x" * (MAX_LESSON_BYTES + 1), "a lesson may be at most"),
    ("{not json", "not a JSON file"),
    (b"\xff\xfe\x00", "not a JSON file"),
    ("[" * 100_000, "not a JSON file"),
    ('{"title": "t"}', 'with "title" (text) and "steps" (a list)'),
    ('{"title": "t", "steps": []}', "a lesson has 1 to 50 steps, this one 0"),
    ('{"title": "t", "steps": [3]}', "step 1 is not a JSON object"),
    (_with(page="pages/train.py"), "step 1: page 'pages/train.py' is not one of"),
    (_with(page="../../etc/passwd"), "is not one of"),
    (_with(params={"eps": 0.3}), "must map names to text values"),
    (_with(params="eps=0.3"), '"params" is missing or not an object'),
    (_with(title=None), '"title" is missing or not text'),
])
def test_a_bad_lesson_file_is_refused_with_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Lesson.from_json(text)


def test_a_class_publishes_only_changes_and_ends():
    rooms = classroom.Classes()
    code = rooms.open()
    assert len(code) == classroom.CODE_LENGTH and set(code) <= set(classroom.CODE_ALPHABET)
    assert rooms.view(code).version == 0
    rooms.publish(code, "pages/explore.py", {"image": "8"})
    rooms.publish(code, "pages/explore.py", {"image": "8"})  # the same view again: no new version
    assert (rooms.view(code).version, rooms.view(code).params) == (1, {"image": "8"})
    rooms.publish(code, "pages/explore.py", {"image": "9"})
    assert rooms.view(f" {code.lower()} ").version == 2  # typed codes are normalized
    rooms.share_lesson(code, GUIDED.to_json())
    assert Lesson.from_json(rooms.view(code).lesson) == GUIDED
    rooms.close(code)
    assert rooms.view(code) is None
    rooms.publish(code, "pages/explore.py", {})  # publishing to an ended class does nothing


def test_old_classes_close_and_a_full_server_says_so(monkeypatch):
    rooms = classroom.Classes()
    first = rooms.open()
    for _ in range(classroom.MAX_CLASSES - 1):
        rooms.open()
    with pytest.raises(RuntimeError, match="classes are open on this server"):
        rooms.open()
    now = classroom.time.time()
    monkeypatch.setattr(classroom.time, "time", lambda: now + classroom.CLASS_TTL_SECONDS + 1)
    assert rooms.open() and rooms.view(first) is None  # unused for the TTL: closed


def test_a_followed_view_opens_by_its_page_path_with_the_class_version():
    from app_support.classroom import VIEW_PARAM, view_url

    assert view_url("pages/explore.py", {"image": "8", "models": "a,b"}, 3) == f"explore?image=8&models=a%2Cb&{VIEW_PARAM}=3"
    assert view_url("pages/random_start.py", {}, 1) == f"random_start?{VIEW_PARAM}=1"
    assert view_url("app.py", {}, 2) == f"./?{VIEW_PARAM}=2"
