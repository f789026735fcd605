"""Recognise: upload clips, record one, or try the example; see the emotion in each."""

import streamlit as st

import ui

ui.through_app()
st.title("What emotion is in this voice?")
st.caption(
    "Upload speech or record yourself: the model says which emotion it hears, "
    "how sure it is, and how that changes over the clip."
)
model = ui.model_picker()

upload_tab, record_tab, example_tab = st.tabs(
    [
        ":material/upload_file: Upload",
        ":material/mic: Record",
        ":material/play_circle: Try an example",
    ]
)
with upload_tab:
    uploads = st.file_uploader(
        "Speech clips",
        type=ui.UPLOAD_TYPES,
        accept_multiple_files=True,
        help=ui.upload_help(),
        key="uploads",
    )
    st.caption(ui.upload_help())  # stays visible when the uploader refuses a file
    ui.show_clips(ui.clips_from_uploads(uploads), model, key="upload")

with record_tab:
    recording = st.audio_input(
        "Record a sentence or two, speaking with some emotion",
        sample_rate=48_000,  # like the training recordings; resampled as they were
        key="recording",
        help="Your browser asks for the microphone. Nothing is stored: the recording "
        "stays in this session only.",
    )
    ui.show_clips(ui.clips_from_recording(recording), model, key="record")

with example_tab:
    st.markdown(ui.EXAMPLE_NOTE)
    if st.button("Recognise the example", icon=":material/play_arrow:", key="example"):
        st.session_state["show_example"] = True
    if st.session_state.get("show_example"):
        ui.show_clips(ui.example_clips(), model, key="example")

if model is not None:
    model.finish_loading()
