"""Models & about: what each installed model is, how well it did, and where its data came from."""

import streamlit as st

from ui import model_cards, models, routing, texts

routing.through_app()
st.title("Models and data")
st.markdown(texts.ABOUT)

installed = models.installed_models()
st.header("Installed models", anchor=False)
if not installed:
    st.info("No model is installed yet. Train one on the **Train** page.")
else:
    model_cards.show_models_overview(installed)
    st.caption(
        "Accuracy: share of held-out clips labelled correctly. UAR: the mean of each emotion's "
        "recall. Each row's *protocol* says how the clips were held out; only a random split "
        "tests on speakers the model heard in training."
    )
    for info in installed:
        with st.expander(models.model_heading(info), expanded=len(installed) == 1):
            model_cards.show_model_details(info)

st.markdown(texts.CREDITS)
