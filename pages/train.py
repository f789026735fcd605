"""Train: point at dataset folders, scan them, choose options, train with live progress, save.

The sections are ``ui.training_*``; the run itself is ``ser.jobs.TrainingJob`` (background
thread, progress, saving) over ``ser.train``, the same code path as ``python -m ser train``.
"""

import streamlit as st

from ui import access, routing, training, training_data, training_options, training_results
from ui import training_run as run

routing.through_app()
st.title("Train a model")
st.caption(
    "Train an emotion model on a speech dataset on this machine, see how well it does on "
    "speakers it never heard, and save it for the Recognise page."
)

switch = access.training_access()  # off unless the deployer turns it on
if not switch.enabled:
    st.info(switch.message, icon=":material/block:")
    st.stop()

run.show_other_run()  # another session's run: one run at a time
job = training.own_job()
busy = job is not None and job.running

# 1. folders, scan, what was found and skipped
report = training_data.choose_data(busy=busy, data_root=switch.data_root)
if report is not None:
    choice = training_options.choose_options(report, busy=busy)  # 2. model, emotions, epochs...
    run.training_controls(report, choice)  # 3. the Train button
training_results.show_run(job)  # progress, then results and saving (4., 5.), or why it stopped
