"""A page's view in its URL query parameters (``st.query_params``), so that a link reproduces it.

The page names its fields: a URL parameter, the session-state key of the widget that holds it,
and the values it accepts. Before drawing its widgets the page calls ``Link.incoming``: when the
URL is not the one the page last wrote (a shared link was opened, a guided demo clicked), the
link's values go into session state with ``Link.take`` and the widgets show them; a value the
widget would not accept is left out and reported (``Link.ignored``). After drawing, ``Link.write``
puts the current values into the URL. Coming back to the page without parameters restores the
view it last wrote.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import streamlit as st

from app_support.classroom import publish

#: Query parameters whose value is a list are written comma-separated.
SEPARATOR = ","
#: How many of its own latest URLs a page recognizes when the browser sends one back late.
HISTORY = 8


def encode(value: Any) -> str:
    """A widget value as URL text: booleans as 1/0, lists comma-separated, floats exactly (repr)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return SEPARATOR.join(encode(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def decode(text: str, like: Any) -> Any:
    """URL text as a value of the type of ``like`` (bool, int, float, str, list of str); raises
    ValueError for text that is not such a value."""
    if isinstance(like, bool):
        if text not in ("0", "1", "true", "false"):
            raise ValueError(f"{text!r} is not 1 or 0")
        return text in ("1", "true")
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float) or like is None:
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{text!r} is not a finite number")
        return value
    if isinstance(like, list):
        return [v for v in text.split(SEPARATOR) if v]
    return text


def query(values: dict[str, Any]) -> dict[str, str]:
    """Values as URL parameters (``encode``), None values left out."""
    return {name: encode(v) for name, v in values.items() if v is not None}


class Link:
    """The URL state of one page, keyed ``page`` in session state (see the module docstring)."""

    def __init__(self, page: str):
        self.page = page
        self.ignored: list[str] = []

    @property
    def _history(self) -> str:
        return f"{self.page}_url_history"

    def incoming(self) -> dict[str, str] | None:
        """The link's parameters when the URL was not written by this page (then the page applies
        them), the page's last view when the URL has none, else None.

        A rerun carries the URL the browser showed when the user acted; when the user acts before
        the page's latest URL has reached the browser (a busy server), that is one of the page's own
        earlier URLs. Such an echo (one of the last ``HISTORY`` written) is not a link: applying it
        would undo the user's newest settings."""
        params = st.query_params.to_dict()
        written = st.session_state.get(self._history, [])  # oldest first
        if params in written:
            return None
        return params or (written[-1] if written else None)

    def read(self, params: dict[str, str], name: str, like: Any = "",
             options: Sequence | Callable[[Any], bool] | None = None) -> Any:
        """Parameter ``name`` of ``params`` when it decodes as a value like ``like`` and (every item) is
        allowed by ``options``, a list of choices or a predicate; None when the link has no such
        parameter or an unusable one (then it is listed in ``ignored``)."""
        if name not in params:
            return None
        allowed = options if callable(options) else (lambda v: options is None or v in options)
        try:
            value = decode(params[name], like)
            items = value if isinstance(value, list) else [value]
            bad = [v for v in items if not allowed(v)]
            if bad:
                raise ValueError(f"{', '.join(map(str, bad))}: not allowed here")
        except ValueError as err:
            self.ignored.append(f"{name}={params[name]} ({err})")
            return None
        return value

    def take(self, params: dict[str, str], name: str, key: str, like: Any = "",
             options: Sequence | Callable[[Any], bool] | None = None) -> Any:
        """``read`` parameter ``name`` of ``params`` and put a usable value into session-state
        ``key``; returns the value, or None (see ``read``)."""
        value = self.read(params, name, like, options)
        if value is not None:
            st.session_state[key] = value
        return value

    def write(self, values: dict[str, Any]) -> None:
        """Make the URL show ``values`` (None values left out), remember it as this page's own (the
        last ``HISTORY`` URLs it wrote, newest last), and publish it to the class this session teaches
        (app_support/classroom.py)."""
        params = query(values)
        publish(f"pages/{self.page}.py", params)
        if st.query_params.to_dict() != params:
            st.query_params.from_dict(params)
        written = [p for p in st.session_state.get(self._history, []) if p != params]
        st.session_state[self._history] = (written + [params])[-HISTORY:]  # the page's own URL last
