"""The Train page's first section: dataset folders, the scan, and what it found and skipped."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ser import plots
from ser.audio import printable
from ser.datasets import LAYOUTS_HELP, ScanReport, corpus_title, scan
from ser.errors import DatasetError
from ui.access import DATA_ROOT_SETTING, confine, setting
from ui.texts import DATASET_SOURCES
from ui.training import FOLDERS_WIDGET, SCAN_ERROR_KEY, SCAN_KEY

PLOT_CONFIG = {"displaylogo": False}


def _folders(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def layouts_markdown() -> str:
    return "\n".join(f"- {line}" for line in LAYOUTS_HELP.splitlines())


def _show_dataset_error(message: str) -> None:
    """The package's message in an error box, the layouts it understands below it."""
    head, _, _ = message.partition("\n\nLayouts understood:")
    st.error(head, icon=":material/folder_off:")
    st.markdown("**Layouts understood:**\n" + layouts_markdown())


def choose_data(*, busy: bool, data_root: Path | None = None) -> ScanReport | None:
    """Folder input and Scan button; shows the scan. Returns the report once a scan worked.

    With ``data_root``, only folders under it are scanned or even looked at.
    """
    st.header("1. Data", divider="gray")
    hint = setting(DATA_ROOT_SETTING)
    if data_root is not None:
        st.caption(f"This server trains only from folders under `{data_root}`.")
    text = st.text_area(
        "Dataset folders, one per line",
        value=hint,
        placeholder="/path/to/ravdess",
        height=80,
        key=FOLDERS_WIDGET,
        disabled=busy,
        help="Folders on the machine that runs this app. They are only read, never written. "
        "Several folders (e.g. RAVDESS and TESS) are trained on together.",
    )
    folders = _folders(text)
    if st.button("Scan", icon=":material/search:", key="train_scan_button", disabled=busy):
        _scan(folders, data_root)
    failed = st.session_state.get(SCAN_ERROR_KEY)
    failed = failed[1] if failed is not None and failed[0] == folders else None
    if failed is not None:
        _show_dataset_error(failed)  # with the layouts understood
    _show_sources(hint, folders, data_root, failed=failed is not None)
    scanned = st.session_state.get(SCAN_KEY)
    if scanned is None or scanned[0] != folders:
        if scanned is not None:
            st.info("The folders changed since the last scan: press **Scan** again.")
        elif not folders:
            st.caption("Type the folder of a dataset, then press **Scan**.")
        return None
    show_scan(scanned[1])
    return scanned[1]


def _scan(folders: tuple[str, ...], data_root: Path | None) -> None:
    """Scan, keeping the report or the message for this set of folders."""
    st.session_state.pop(SCAN_KEY, None)
    st.session_state.pop(SCAN_ERROR_KEY, None)
    try:
        report = _scan_with_progress(confine(folders, data_root))
    except DatasetError as error:
        st.session_state[SCAN_ERROR_KEY] = (folders, str(error))
    else:
        st.session_state[SCAN_KEY] = (folders, report)


def _show_sources(
    hint: str, folders: tuple[str, ...], data_root: Path | None, *, failed: bool
) -> None:
    """Where to get a dataset: open while no folder typed is one on this machine."""
    try:
        local_data = any(
            Path(f).expanduser().is_dir()
            for f in confine([hint, *folders] if hint else folders, data_root)
        )
    except DatasetError:  # outside the root: said above, and not looked at
        local_data = False
    with st.expander("Where to get a dataset", icon=":material/download:", expanded=not local_data):
        st.markdown(DATASET_SOURCES)
        if not failed:
            st.markdown("**Layouts understood:**\n" + layouts_markdown())


def _scan_with_progress(folders: tuple[str, ...]) -> ScanReport:
    bar = st.progress(0.0, text="Scanning…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Scanning: {done:,} of {total:,} checks")

    try:
        return scan(folders, progress=progress)
    finally:
        bar.empty()


def layouts_text(report: ScanReport) -> str:
    return ", ".join(
        f"{corpus_title(name)} ({count:,} clips)" for name, count in report.layouts.items()
    )


def skipped_table(report: ScanReport) -> pd.DataFrame:
    return pd.DataFrame(
        [(printable(str(s.path)), printable(s.reason)) for s in report.skipped],
        columns=["file", "reason"],
    )


def speakers_chart(report: ScanReport) -> go.Figure:
    """Clips per speaker; with a single corpus, its name goes on the axis, not on every bar."""
    counts = report.speaker_counts()
    corpora = {speaker.partition(":")[0] for speaker in counts}
    if len(corpora) != 1:
        return plots.counts_bar(counts, title="Clips per speaker")
    corpus = corpora.pop()
    fig = plots.counts_bar(
        {speaker.partition(":")[2]: n for speaker, n in counts.items()}, title="Clips per speaker"
    )
    fig.update_xaxes(title=f"{corpus_title(corpus)} speaker", type="category")
    return fig


def show_scan(report: ScanReport) -> None:
    """What the scan found: layouts, counts per emotion and speaker, and what was skipped."""
    minutes = report.total_seconds / 60
    speakers = len(report.speaker_counts())
    st.success(
        f"**{len(report.clips):,} usable clips** ({minutes:,.1f} min) from {speakers} speakers. "
        f"Layout detected: {layouts_text(report)}.",
        icon=":material/check_circle:",
    )
    left, right = st.columns([2, 3])
    left.plotly_chart(
        plots.counts_bar(report.emotion_counts(), title="Clips per emotion"),
        config=PLOT_CONFIG,
        key="scan_emotions",
    )
    right.plotly_chart(speakers_chart(report), config=PLOT_CONFIG, key="scan_speakers")
    if report.skipped:
        duplicates = len(report.duplicates)
        with st.expander(
            f"{len(report.skipped):,} {'file' if len(report.skipped) == 1 else 'files'} skipped"
            + (f" ({duplicates:,} duplicate audio)" if duplicates else ""),
            icon=":material/block:",
        ):
            st.dataframe(skipped_table(report), hide_index=True, width="stretch", height=250)
    else:
        st.caption("No file was skipped.")
