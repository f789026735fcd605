"""The Streamlit side of the app, shared by its pages; one module per concern.

- ``routing``: every page runs inside ``app.py``'s navigation.
- ``models``: the installed models, each loaded once per process, warmed up in the
  background, and the sidebar picker.
- ``describe``: what a model is and how well it did, in words.
- ``clips``: uploads, recordings and the example become clips; each recognised once.
- ``results``: one clip in full, or many as a table with a CSV download.
- ``model_cards``: the Models page.
- ``training`` (the run a session owns, one at a time), ``training_data`` (1. data),
  ``training_options`` (2.), ``training_run`` (3. train, progress) and ``training_results``
  (4. results, 5. save): the Train page; ``access`` is its switch and ``keras_guard`` keeps
  Streamlit from clearing Keras's state mid-run. The run itself is ``ser.jobs.TrainingJob``.
- ``texts``: the longer texts; ``markdown``: visitors' text made safe to show.

Nothing here judges audio or emotions: that is the ``ser`` package's job. TensorFlow is
imported only by the model loader. pandas is imported where a page first needs it (a chart
or a table), after its first widgets are on their way to the browser; ``ser.plots`` imports
it before Plotly draws anything (see there).
"""
