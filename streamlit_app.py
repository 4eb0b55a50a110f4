"""digitlab: train a from-scratch NumPy network on handwritten digits and watch it learn.

Run with ``streamlit run streamlit_app.py``. The sidebar (training controls) is drawn here
on every page, so a run keeps going while you move between pages.
"""

import streamlit as st

import ui.preload  # noqa: F401  (first: every module, imported once, before any page)
from ui import hosting
from ui.sidebar import render_sidebar

PAGES = [
    st.Page("app_pages/training.py", title="Training", icon=":material/show_chart:", default=True),
    st.Page("app_pages/weights.py", title="Weights", icon=":material/grid_view:"),
    st.Page("app_pages/evaluation.py", title="Evaluation", icon=":material/table_chart:"),
    st.Page("app_pages/mistakes.py", title="Mistakes", icon=":material/error:"),
    st.Page("app_pages/draw.py", title="Draw", icon=":material/draw:"),
    st.Page("app_pages/inside.py", title="Inside", icon=":material/visibility:"),
    st.Page("app_pages/network.py", title="Network", icon=":material/hub:"),
    st.Page("app_pages/my_digits.py", title="My digits", icon=":material/person_edit:"),
    st.Page("app_pages/models.py", title="Models", icon=":material/save:"),
    st.Page("app_pages/runs.py", title="Runs", icon=":material/compare_arrows:"),
]

page = st.navigation(PAGES)
# After st.navigation: called before it, AppTest lost the sidebar on every rerun.
st.set_page_config(page_title="digitlab", page_icon=":material/draw:", layout="wide")
hosting.register_session()
render_sidebar()
hosting.restart_notice()
page.run()
