"""Train: point at dataset folders, scan them, choose options, train with live progress, save.

The machinery (background run, one run at a time, progress, saving) is in ``training_ui``;
the training itself is ``ser.train``, the same code path as ``python -m ser train``.
"""

import streamlit as st

import training_ui as tui
import ui

ui.through_app()
st.title("Train a model")
st.caption(
    "Train an emotion model on a speech dataset on this machine, see how well it does on "
    "speakers it never heard, and save it for the Recognise page."
)

access = tui.training_access()  # off unless the deployer turns it on
if not access.enabled:
    st.info(access.message, icon=":material/block:")
    st.stop()

tui.show_other_run()  # another session's run: one run at a time
job = tui.own_job()
busy = job is not None and job.running

report = tui.choose_data(
    busy=busy, data_root=access.data_root
)  # 1. folders, scan, what was found and skipped
if report is not None:
    choice = tui.choose_options(report, busy=busy)  # 2. model, emotions, epochs, validation
    tui.training_controls(report, choice)  # 3. the Train button
tui.show_run(job)  # progress, then results and saving (4., 5.), or why it stopped
