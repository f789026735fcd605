"""Models & about: what each installed model is, how well it did, and where its data came from."""

import streamlit as st

import ui

ui.through_app()
st.title("Models and data")
st.markdown(ui.ABOUT)

models = ui.installed_models()
st.header("Installed models", anchor=False)
if not models:
    st.info("No model is installed yet. Train one on the **Train** page.")
else:
    ui.show_models_overview(models)
    st.caption(
        "Accuracy: share of held-out clips labelled correctly. UAR: the mean of each emotion's "
        "recall. Each row's *protocol* says how the clips were held out; only a random split "
        "tests on speakers the model heard in training."
    )
    for info in models:
        with st.expander(ui.model_heading(info), expanded=len(models) == 1):
            ui.show_model_details(info)

st.markdown(ui.CREDITS)
