"""Import everything the pages need, once, before any page runs.

``streamlit_app.py`` imports this module first. Streamlit runs each browser session's
script in its own thread, so ten visitors arriving together used to import pandas,
Plotly and the app's modules ten times at once, and a thread could see a module another
thread had only half initialised (``partially initialized module 'pandas' has no
attribute 'Series'``). Python holds a module's import lock while its body runs: the
first session runs the body below, and every other session waits at
``import ui.preload`` until all of it is done, then finds each module complete.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import pkgutil

# Third-party modules, heaviest first; then every module of the ui package (they import
# the nn_core modules they use).
THIRD_PARTY = (
    "numpy",
    "pandas",
    "plotly.graph_objects",
    "plotly.io",
    "PIL.Image",
    "threadpoolctl",
)
# Importable only inside the Streamlit runtime; the Draw page imports it again and shows
# any error there, so a failure here must not take the other pages down.
OPTIONAL = ("streamlit_drawable_canvas",)


def app_modules() -> list[str]:
    """Every module of the ``ui`` package but this one."""
    import ui

    names = (info.name for info in pkgutil.iter_modules(ui.__path__, "ui."))
    return sorted(name for name in names if name != __name__)


for _name in (*THIRD_PARTY, "nn_core", *app_modules()):
    importlib.import_module(_name)
for _name in OPTIONAL:
    with contextlib.suppress(Exception):
        importlib.import_module(_name)

# Streamlit runs a full garbage collection after every script run, fragment reruns
# included (``runner.postScriptGC``, kept on for its memory care). With pandas, Plotly and
# scikit-learn loaded, one pass over their ~120,000 objects takes 70 ms or more, holding the
# GIL that a training thread needs between its NumPy calls: a live page's redraws halved
# the training's speed. The modules loaded above live as long as the server, so they are
# moved out of the collector's sight once; later collections scan only what sessions make.
gc.freeze()
