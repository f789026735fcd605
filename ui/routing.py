"""Every page runs inside ``app.py``'s navigation; call ``through_app`` first on each."""

from __future__ import annotations

import streamlit as st

from ui import training

_app_routing = False  # whether app.py has routed a page in this process


def note_app_routing() -> None:
    """Called by ``app.py`` before it routes: pages run inside its navigation from now on."""
    global _app_routing
    _app_routing = True


def through_app() -> None:
    """Make sure this page runs inside ``app.py``'s navigation, and keep the Train page's form
    while another page runs.

    Because a ``pages/`` folder exists, Streamlit runs its old folder-based navigation until
    the first ``st.navigation`` call in the process. So when a fresh server's first request
    is a page's own address (a bookmark of /models, say), Streamlit runs that page file by
    itself: no wide layout, file names in the sidebar. Switch the old mode off and rerun:
    the rerun goes through ``app.py`` and lands on the same page.

    Only before ``app.py`` has ever run in the process: AppTest resets the old mode before
    every run (its first run goes through ``app.py``), and there a rerun would only lose
    button clicks.
    """
    training.keep_form()  # the Train page's form and run survive a visit to another page
    if _app_routing:
        return
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # moved in some later Streamlit: nothing to fix there, presumably
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()
