"""Runs: every training of this session, compared; import and export; the learning-rate
finder (here, beside the runs it helps to plan, not on the Training page)."""

import streamlit as st

from ui.runs_view import runs_page

st.title("Runs")
runs_page()
