"""Results: one clip in full (headline, probabilities, waveform, spectrogram, emotion over
time, caveats), or many as a table with a CSV download."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import streamlit as st

from ser.emotions import EMOJI, SPEECH_EMOJI
from ser.store import ModelInfo
from ui import clips as intake
from ui import models
from ui.clips import Clip, Outcome
from ui.describe import model_description
from ui.markdown import md

if TYPE_CHECKING:
    import pandas as pd

    from ser.predict import Result

PLOT_CONFIG = {"displaylogo": False}


def headline(result: Result) -> str:
    """E.g. "😄 Happy — 72%"."""
    p = result.prediction
    return f"{EMOJI.get(p.emotion, SPEECH_EMOJI)} {p.emotion.capitalize()} — {p.confidence:.0%}"


def show_clips(clips: Sequence[Clip], choice: models.ModelChoice | None, *, key: str) -> None:
    """Recognise the clips and show them: one in full, several as a table plus one in full."""
    if not clips:
        return
    if choice is None:
        st.info("Install or train a model to recognise clips (see the sidebar).")
        return
    with st.spinner(f"Loading model {choice.info.name} (once per server start)…"):
        recognizer = choice.recognizer()
    with st.spinner(f"Listening to {len(clips)} clip{'s' if len(clips) > 1 else ''}…"):
        outcomes = intake.recognise(recognizer, clips, key=key)
    picked = choice.info.name
    if len(outcomes) == 1:
        show_outcome(outcomes[0], key=key, picked=picked)
        return
    show_table(outcomes, recognizer.labels, key=key)
    good = [i for i, o in enumerate(outcomes) if o.result is not None]
    if not good:
        return
    st.divider()
    shown = st.selectbox(
        "Show the details of",
        options=good,
        format_func=lambda i: f"{outcomes[i].clip.name}: {headline(outcomes[i].result)}",
        key=f"{key}-detail",
    )
    show_outcome(outcomes[shown], key=f"{key}-detail", picked=picked)


def _answering_model(outcome: Outcome, picked: str | None) -> ModelInfo | None:
    """The model that answered, when it is not the one the sidebar describes (the default
    hands a low-rate recording on)."""
    if picked is None or outcome.model == picked:
        return None
    return next((m for m in models.installed_models() if m.name == outcome.model), None)


def show_outcome(outcome: Outcome, *, key: str, picked: str | None = None) -> None:
    """One clip in full, or its error message; ``picked`` is the sidebar's model."""
    from ser import plots  # loaded on first use: see ui/__init__.py

    if outcome.result is None:
        st.error(md(outcome.error or ""), icon=":material/error:")
        return
    result = outcome.result
    audio = result.audio
    left, right = st.columns([2, 3], gap="large")
    with left:
        st.subheader(headline(result), anchor=False)
        st.caption(
            f"Most likely emotion in **{md(outcome.clip.name)}** ({audio.duration_s:.1f} s), "
            f"according to model **{outcome.model}**."
        )
        if (handed := _answering_model(outcome, picked)) is not None:
            st.caption(f"About **{handed.name}**, which answered: {model_description(handed)}")
        st.audio(outcome.clip.data, format=outcome.clip.mime)
        for caveat in result.caveats:
            st.warning(md(caveat), icon=":material/warning:")
    with right:
        st.plotly_chart(
            plots.probability_bars(result.prediction.as_dict()),
            key=f"{key}-probabilities",
            config=PLOT_CONFIG,
        )
    _show_views(result, key=key)


def _show_views(result: Result, *, key: str) -> None:
    """Emotion over time (long clips), waveform and spectrogram, one tab at a time.

    Only the open tab is computed and sent: a spectrogram is the heaviest thing on the page.
    """
    from ser import plots  # loaded on first use: see ui/__init__.py

    audio, timeline = result.audio, result.timeline
    names = ["Waveform", "Spectrogram"]
    if timeline is not None:
        names.insert(0, "Emotion over time")
    tabs = st.tabs(names, key=f"{key}-views", on_change="rerun")
    for name, tab in zip(names, tabs, strict=True):
        if tab.open is False:
            continue
        with tab:
            if name == "Emotion over time" and timeline is not None:
                figure = plots.emotion_over_time(
                    timeline.start_s,
                    timeline.probabilities,
                    timeline.labels,
                    window_s=timeline.window_s,
                )
            elif name == "Waveform":
                figure = plots.waveform(audio.samples, sample_rate_hz=audio.sample_rate_hz)
            else:
                figure = plots.spectrogram(audio.samples, sample_rate_hz=audio.sample_rate_hz)
            st.plotly_chart(figure, key=f"{key}-{name}", config=PLOT_CONFIG)
            if name == "Emotion over time" and timeline is not None:
                st.caption(
                    f"The clip is longer than the clips the model learnt from, so it is judged "
                    f"in {timeline.window_s:g} s windows; the headline averages them."
                )


def outcomes_table(outcomes: Sequence[Outcome], labels: Sequence[str]) -> pd.DataFrame:
    """One row per clip: file, the model that answered, emotion, confidence, error, each
    emotion's probability, caveats (the CSV; a failed clip's figures are empty)."""
    import pandas as pd  # loaded on first use: see ui/__init__.py

    rows = []
    for o in outcomes:
        row: dict[str, Any] = {"file": o.clip.name, "model": o.model, "emotion": None}
        row |= {"confidence": None, "error": o.error or ""}
        row |= dict.fromkeys(labels)
        if o.result is not None:
            p = o.result.prediction
            row |= {"emotion": p.emotion, "confidence": round(p.confidence, 4)}
            row |= {k: round(v, 4) for k, v in p.as_dict().items()}
        row["caveats"] = "; ".join(o.result.caveats) if o.result is not None else ""
        rows.append(row)
    return pd.DataFrame(rows)


def show_table(outcomes: Sequence[Outcome], labels: Sequence[str], *, key: str) -> None:
    failed = sum(o.result is None for o in outcomes)
    summary = f"**{len(outcomes)} clips**: {len(outcomes) - failed} recognised"
    if failed:
        summary += f", {failed} could not be used (see the *error* column)"
    answering = list(dict.fromkeys(o.model for o in outcomes))  # the default hands some on
    st.markdown(
        summary
        + f". Model{'s' if len(answering) > 1 else ''} "
        + ", ".join(f"**{m}**" for m in answering)
        + "."
    )
    table = outcomes_table(outcomes, labels)
    percent = {k: st.column_config.NumberColumn(k, format="percent") for k in labels}
    st.dataframe(
        table,
        hide_index=True,
        key=f"{key}-table",
        placeholder="–",  # a failed clip has no figures: a dash, not "None"
        column_config={
            "confidence": st.column_config.ProgressColumn(
                "confidence", format="percent", min_value=0.0, max_value=1.0
            ),
            **percent,
            "error": st.column_config.TextColumn("error", width="large"),
        },
    )
    st.download_button(
        "Download as CSV",
        data=table.to_csv(index=False).encode("utf-8"),
        file_name="emotions.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
        key=f"{key}-csv",
    )
