"""The Streamlit-aware helpers of the dashboard (the math stays in ``nn_core``).

``limits`` (hosted-demo caps), ``state`` (session-state keys), ``data`` (cached datasets and
uploads), ``runner`` (background training per session), ``charts`` (arrays -> Plotly
figures, no Streamlit), ``share`` (settings <-> URL), ``sidebar`` (the shared sidebar),
``views`` (small rendering helpers shared by pages).
"""
