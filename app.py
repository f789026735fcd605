"""Entry point: ``streamlit run app.py``. Sets up the page and routes to the pages in ``pages/``.

Only what the first page needs is imported here; TensorFlow and the default model load in a
background thread (``ui.models.start_warmup``) while the first page renders.
"""

import streamlit as st

from ui import models

st.set_page_config(
    page_title="Speech emotion recognition",
    page_icon="🎙️",
    layout="wide",
    menu_items={"About": "Speech emotion recognition: upload or record speech, get emotions."},
)
models.start_warmup()

navigation = st.navigation(
    [
        st.Page(
            "pages/recognise.py", title="Recognise", icon=":material/graphic_eq:", default=True
        ),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/models.py", title="Models & about", icon=":material/info:"),
    ]
)
navigation.run()
