"""Recognise: upload clips, record one, or try the example; see the emotion in each."""

import streamlit as st

import live_ui
from ui import clips, models, results, routing, texts

routing.through_app()
st.title("What emotion is in this voice?")
st.caption(
    "Upload speech or record yourself: the model says which emotion it hears, "
    "how sure it is, and how that changes over the clip."
)
model = models.model_picker()

upload_tab, record_tab, live_tab, example_tab = st.tabs(
    [
        ":material/upload_file: Upload",
        ":material/mic: Record",
        ":material/graphic_eq: Live",
        ":material/play_circle: Try an example",
    ],
    **live_ui.tabs_options(),  # the Live tab runs only when open: see live_ui.tabs_options
)
with upload_tab:
    uploads = st.file_uploader(
        "Speech clips",
        type=clips.UPLOAD_TYPES,
        accept_multiple_files=True,
        help=clips.upload_help(),
        key="uploads",
    )
    st.caption(clips.upload_help())  # stays visible when the uploader refuses a file
    results.show_clips(clips.from_uploads(uploads), model, key="upload")

with record_tab:
    recording = st.audio_input(
        "Record a sentence or two, speaking with some emotion",
        sample_rate=48_000,  # like the training recordings; resampled as they were
        key="recording",
        help="Your browser asks for the microphone. Nothing is stored: the recording "
        "stays in this session only.",
    )
    results.show_clips(clips.from_recording(recording), model, key="record")

with live_tab:
    live_ui.show_live(model, is_open=getattr(live_tab, "open", None))

with example_tab:
    st.markdown(texts.EXAMPLE_NOTE)
    if st.button("Recognise the example", icon=":material/play_arrow:", key="example"):
        st.session_state["show_example"] = True
    if st.session_state.get("show_example"):
        results.show_clips(clips.example(), model, key="example")

if model is not None:
    model.finish_loading()
