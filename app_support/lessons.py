"""Lesson playlists: an ordered list of app views (a page and its link parameters, as the guided
demos give them), each with a short explanation, a question the class answers before the result
shows ("predict, then reveal") and the answer that was measured. A lesson is saved to and loaded
from a JSON file (``Lesson.to_json`` / ``Lesson.from_json``); the guided demos of the home page are
the first lesson (``GUIDED``).

File format: ``{"title": str, "steps": [{"title", "page", "params", "explain", "predict", "answer"}]}``
with ``page`` one of the app's view pages (``VIEW_PAGES``) and ``params`` a flat object of strings.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from app_support.demos import DEMOS

#: The pages a lesson step may open (those that read their view from the URL).
VIEW_PAGES = ("pages/explore.py", "pages/random_start.py")
#: A lesson file larger than this is refused before parsing.
MAX_LESSON_BYTES = 200_000
MAX_STEPS = 50


@dataclass(frozen=True)
class Step:
    """One view of a lesson: ``page`` opened with ``params`` (its URL parameters)."""

    title: str
    page: str
    params: dict
    explain: str
    predict: str
    answer: str


@dataclass(frozen=True)
class Lesson:
    title: str
    steps: tuple[Step, ...]

    def to_json(self) -> str:
        return json.dumps({"title": self.title, "steps": [asdict(s) for s in self.steps]}, indent=2)

    @classmethod
    def from_json(cls, data: bytes | str) -> "Lesson":
        """The lesson of a JSON file's bytes; ValueError, saying what is wrong and where, for anything
        else (too large, not JSON, a field missing or of the wrong type, an unknown page, no steps)."""
        if len(data) > MAX_LESSON_BYTES:
            raise ValueError(f"the file is {len(data):,} bytes; a lesson may be at most {MAX_LESSON_BYTES:,}")
        try:
            raw = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise ValueError("it is not a JSON file") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("title"), str) or not isinstance(raw.get("steps"), list):
            raise ValueError('a lesson is a JSON object with "title" (text) and "steps" (a list)')
        if not 1 <= len(raw["steps"]) <= MAX_STEPS:
            raise ValueError(f"a lesson has 1 to {MAX_STEPS} steps, this one {len(raw['steps'])}")
        steps = []
        for i, item in enumerate(raw["steps"], 1):
            if not isinstance(item, dict):
                raise ValueError(f"step {i} is not a JSON object")
            for f in fields(Step):
                kind = dict if f.name == "params" else str
                if not isinstance(item.get(f.name), kind):
                    raise ValueError(f'step {i}: "{f.name}" is missing or not {"an object" if kind is dict else "text"}')
            if item["page"] not in VIEW_PAGES:
                raise ValueError(f"step {i}: page {item['page']!r} is not one of {', '.join(VIEW_PAGES)}")
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in item["params"].items()):
                raise ValueError(f'step {i}: "params" must map names to text values (URL parameters)')
            steps.append(Step(**{f.name: item[f.name] for f in fields(Step)}))
        return cls(raw["title"], tuple(steps))


#: The question each guided demo asks before its result shows.
_PREDICT = {
    "pgd": "The attack changes each pixel by at most 0.3. Will the network still read this 1 as a 1? "
           "Will its map keep the shape of the digit?",
    "isa": "The attack turns the 3 into an 8 and also tries to keep the true-class map unchanged. Which "
           "measure can it fool: the 1-class discrepancy, the 2-class one, or both?",
    "aai": "The attack keeps the label and moves the map's strongest cells. Whose map holds: the normal "
           "network's or the Int network's?",
    "robust": "Three networks, one attack at ε = 0.35. Which keep the label, and whose map keeps its ranking?",
    "start": "The Int network keeps its 1 under the authors' attack. Will it keep it when the same attack "
             "starts from a random point of the ε-ball?",
    "uar": "Snow falls on an airplane. Which network still sees an airplane, and whose map survives?",
}
GUIDED = Lesson("The guided demos", tuple(Step(d.title, d.page, dict(d.params), d.look_for, _PREDICT[d.key], d.works_on)
                                          for d in DEMOS))
#: The lessons the app ships, by key (the key is the Lesson page's ``lesson`` URL parameter).
LESSONS = {"guided": GUIDED}
