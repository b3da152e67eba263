"""A draw-a-digit canvas for MNIST's Explore page: an ``st.components.v2`` component written inline
(HTML, CSS and a few lines of JavaScript; nothing fetched, so it works offline). The user draws
white ink on black with the mouse, a pen or a finger; each finished stroke sends the canvas as a
PNG data URI (the component's ``png`` state), which ``interp_core.images.read_drawing`` turns
into an MNIST input (the ink's bounding box scaled to fit 20×20, its centre of mass at the centre
of 28×28). "Clear" empties the canvas and the state.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np
import streamlit as st

from app_support.common import input_preview
from interp_core.images import read_drawing

#: The canvas's size in pixels and the width of its stroke (MNIST's strokes are about 2-3 of 20 pixels).
CANVAS_PX, STROKE_PX = 280, 28
_PREFIX = "data:image/png;base64,"

_HTML = f"""
<div class="digit-pad">
  <canvas width="{CANVAS_PX}" height="{CANVAS_PX}" role="img" aria-label="drawing area: draw one digit"></canvas>
  <div class="digit-row"><button type="button" class="digit-clear">Clear</button>
  <span>Draw one digit, large, in the middle of the black square.</span></div>
</div>
"""

_CSS = """
.digit-pad { display: inline-flex; flex-direction: column; gap: 0.4rem; font-family: var(--st-font, sans-serif); }
.digit-pad canvas { background: #000; touch-action: none; cursor: crosshair; border: 1px solid #888;
                    border-radius: 4px; }
.digit-row { display: flex; gap: 0.8rem; align-items: center; font-size: 0.9rem; }
.digit-clear { font: inherit; padding: 0.2rem 0.9rem; border: 1px solid #888; border-radius: 4px;
               background: transparent; color: inherit; cursor: pointer; }
"""

#: Draws on pointer events; sends the PNG at the end of each stroke; redraws the last sent drawing
#: when the component is mounted anew (``data.png``).
_JS = f"""
export default function (component) {{
  const {{ setStateValue, parentElement, data }} = component;
  const canvas = parentElement.querySelector('canvas');
  const ctx = canvas.getContext('2d');
  if (canvas.dataset.ready) {{ return; }}
  canvas.dataset.ready = '1';
  const blank = () => {{ ctx.fillStyle = '#000'; ctx.fillRect(0, 0, canvas.width, canvas.height); }};
  blank();
  if (data && data.png) {{
    const old = new Image();
    old.onload = () => ctx.drawImage(old, 0, 0);
    old.src = data.png;
  }}
  ctx.strokeStyle = '#fff'; ctx.lineWidth = {STROKE_PX}; ctx.lineCap = 'round'; ctx.lineJoin = 'round';
  let drawing = false;
  const at = (e) => {{
    const box = canvas.getBoundingClientRect();
    return [(e.clientX - box.left) * canvas.width / box.width, (e.clientY - box.top) * canvas.height / box.height];
  }};
  canvas.addEventListener('pointerdown', (e) => {{
    drawing = true; canvas.setPointerCapture(e.pointerId);
    const [x, y] = at(e); ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x, y); ctx.stroke();
  }});
  canvas.addEventListener('pointermove', (e) => {{
    if (!drawing) {{ return; }}
    const [x, y] = at(e); ctx.lineTo(x, y); ctx.stroke();
  }});
  const end = () => {{
    if (!drawing) {{ return; }}
    drawing = false; setStateValue('png', canvas.toDataURL('image/png'));
  }};
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
  parentElement.querySelector('.digit-clear').addEventListener('click', () => {{ blank(); setStateValue('png', ''); }});
}}
"""

_canvas = st.components.v2.component("interp_lab.digit_canvas", html=_HTML, css=_CSS, js=_JS)


def png_from_data_uri(uri: str) -> bytes:
    """The PNG bytes of a ``data:image/png;base64,...`` URI; ValueError for anything else."""
    if not uri.startswith(_PREFIX):
        raise ValueError("the canvas did not send a PNG")
    try:
        return base64.b64decode(uri[len(_PREFIX):], validate=True)
    except binascii.Error:
        raise ValueError("the canvas sent damaged PNG data") from None


def drawn_digit(key: str) -> np.ndarray | None:
    """The canvas (component key ``{key}_drawing``) and the drawing as float32 (1, 1, 28, 28) in
    [0, 1], shown as the model sees it; None while nothing is drawn, or for a drawing that cannot be
    used (an st.error says why)."""
    state = st.session_state.get(f"{key}_drawing") or {}
    result = _canvas(key=f"{key}_drawing", data={"png": state.get("png", "")}, default={"png": ""},
                     on_png_change=lambda: None, width="content")
    if not result.png:
        st.info("Draw a digit on the black square: white ink, one digit, as large as the square allows.",
                icon=":material/draw:")
        return None
    try:
        intake = read_drawing(png_from_data_uri(result.png), name="drawing")
    except ValueError as err:  # an ImageIntakeError, or data that is not a PNG
        st.error(f"Drawing not used: {err}")
        return None
    shown, text = st.columns([1, 4])
    shown.image(input_preview(intake.x.numpy()))
    text.caption("Intake: " + "; ".join(intake.notes) + ".")
    return intake.x[None].numpy()
