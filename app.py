"""Entry point: ``streamlit run app.py``. Sets up the page and routes to the pages in ``pages/``.

Only what the first page needs is imported here. The default model loads in a background
thread (``ui.models.start_warmup``) once the first page has run: started before it, the
thread slowed the page's first widgets by a third of a second (docs/benchmarks.md).
"""

import streamlit as st

from ui import models, routing

st.set_page_config(
    page_title="Speech emotion recognition",
    page_icon="🎙️",
    layout="wide",
    menu_items={"About": "Speech emotion recognition: upload or record speech, get emotions."},
)
routing.note_app_routing()

navigation = st.navigation(
    [
        st.Page(
            "pages/recognise.py", title="Recognise", icon=":material/graphic_eq:", default=True
        ),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/models.py", title="Models & about", icon=":material/info:"),
    ]
)
try:
    navigation.run()
finally:  # also when the page reruns or stops
    models.start_warmup()
