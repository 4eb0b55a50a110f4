"""The drawing canvas and what is said about a drawing (the Draw page's building blocks).

``canvas`` draws streamlit-drawable-canvas 0.13.0 with the app's brush and moves the
component's floating toolbar off the drawing area. ``drawing_check`` says when a drawing
is too small or unlike the training digits (``nn_core.drawing_check``).
"""

from __future__ import annotations

import json

import numpy as np
import streamlit as st

from nn_core.data import DataError
from nn_core.drawing_check import DigitReference, DrawingCheck, check_drawing
from ui.data import mnist
from ui.limits import get_limits
from ui.runner import limit_blas_threads

SIZE = 280  # canvas side in pixels
BRUSH = 18  # stroke width in pixels

# The component's toolbar (undo, redo, reset) floats over the canvas's top right: it is
# invisible (opacity 0) until the mouse hovers the canvas, but its 140x46 px box catches
# every pointer event there, so a stroke that starts in the canvas's top 30 px on the right
# went to the toolbar and was lost (and a tap there could reset the drawing). Here it sits
# above the canvas, always visible (a phone has no hover), and only its buttons take
# clicks. "Update the app" and "Edit" are hidden: every stroke is sent anyway, and moving
# strokes around is not what this canvas is for.
TOOLBAR_CSS = """
.dc-root > .dc-toolbar { top: -2.65rem !important; opacity: 1 !important; pointer-events: none; }
.dc-toolbar-card { pointer-events: auto; }
.dc-icon-button[title="Update the app with this drawing"],
.dc-icon-button[title="Edit"],
.dc-toolbar-separator { display: none; }
"""

# The canvas lives in a shadow root, which page CSS cannot reach: the sheet is adopted by
# every canvas's shadow root, now and whenever one is added (a MutationObserver on the
# page; the shadow root is attached just after its host, hence the retry on the next frame).
_TOOLBAR_SCRIPT = """
<script>
(() => {
  const w = window;
  w.__digitlabCanvasSheet = w.__digitlabCanvasSheet || new CSSStyleSheet();
  w.__digitlabCanvasSheet.replaceSync(%s);
  const sheet = w.__digitlabCanvasSheet;
  const adopt = () => {
    for (const host of document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')) {
      const root = host.shadowRoot;
      if (!root) { requestAnimationFrame(adopt); continue; }
      if (!root.adoptedStyleSheets.includes(sheet)) {
        root.adoptedStyleSheets = [...root.adoptedStyleSheets, sheet];
      }
    }
  };
  adopt();
  if (!w.__digitlabCanvasObserver) {
    w.__digitlabCanvasObserver = new MutationObserver(adopt);
    w.__digitlabCanvasObserver.observe(document.body, { childList: true, subtree: true });
  }
})();
</script>
"""


def keep_toolbar_off_the_canvas() -> None:
    """Move every drawing canvas's toolbar above its drawing area (see ``TOOLBAR_CSS``)."""
    st.html(_TOOLBAR_SCRIPT % json.dumps(TOOLBAR_CSS), unsafe_allow_javascript=True)


def canvas(key: str) -> np.ndarray | None:
    """A 280x280 canvas, white 18-px strokes on black; its RGBA image, None before a stroke.

    Returns
    -------
    ndarray of shape (280, 280, 4), uint8, or None
    """
    from streamlit_drawable_canvas import st_canvas  # needs the Streamlit runtime

    st.space("medium")  # the toolbar's place, above the canvas
    result = st_canvas(
        stroke_width=BRUSH,
        stroke_color="#FFFFFF",
        background_color="#000000",
        height=SIZE,
        width=SIZE,
        drawing_mode="freedraw",
        update_streamlit=True,
        return_image_data=True,
        key=key,
    )
    keep_toolbar_off_the_canvas()
    rgba = result.image_data if result is not None else None
    return None if rgba is None else np.asarray(rgba, dtype=np.uint8)


@st.cache_resource(show_spinner="Reading the MNIST training digits…")
def digit_reference() -> DigitReference | None:
    """The training digits a drawing is compared with (shared, read-only), or None when
    the shipped MNIST cannot be read (the other checks still run).

    Built under the server's BLAS thread cap, as training is: LAPACK's eigensolver with
    two threads on a busy 2-core machine took 25 s instead of 0.5 s.
    """
    limit_blas_threads(get_limits().blas_threads)
    try:
        return DigitReference.from_images(mnist().x_train)
    except DataError:
        return None


def drawing_check(rgba: np.ndarray, image: np.ndarray) -> DrawingCheck:
    """``nn_core.drawing_check.check_drawing`` with the app's brush and reference digits."""
    return check_drawing(rgba, image, digit_reference(), brush=BRUSH)
