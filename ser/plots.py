"""Plotly figures for the app: numpy and results in, ``go.Figure`` out; no Streamlit here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# Plotly uses whatever sys.modules holds: a chart drawn while another thread was still
# importing pandas met a half-imported pandas. Importing it here, first, makes every user of
# these figures wait for the whole of pandas (a module is imported by one thread at a time).
import pandas  # noqa: F401  see above
import plotly.graph_objects as go

from .emotions import COLOURS

_MAX_POINTS = 2000  # a browser draws a few thousand points smoothly, not millions
_MAX_COLUMNS = 500  # spectrogram time steps: every cell of a heatmap is sent to the browser
_SPECTROGRAM_RANGE_DB = 80


def _layout(fig: go.Figure, *, title: str, height: int = 280) -> go.Figure:
    fig.update_layout(title=title, height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def _colour(label: str) -> str:
    return COLOURS.get(label, "#607d8b")  # a label outside the emotion table


def probability_bars(probabilities: Mapping[str, float]) -> go.Figure:
    """Horizontal bars, most likely emotion on top, percentages written on the bars."""
    ordered = sorted(probabilities.items(), key=lambda item: item[1])
    labels, values = [k for k, _ in ordered], [v for _, v in ordered]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=labels,
            orientation="h",
            marker_color=[_colour(k) for k in labels],
            text=[f"{v:.0%}" for v in values],
            textposition="outside",
        )
    )
    fig.update_xaxes(range=[0, 1.1], tickformat=".0%", title="probability")
    return _layout(fig, title="Probability of each emotion", height=60 + 32 * len(labels))


def recall_bars(recall: Sequence[float], labels: Sequence[str], *, protocol: str) -> go.Figure:
    """A compact chart of the share of each emotion's held-out clips the model recognised
    (``Scores.recall``); ``protocol`` names how they were held out, in the title."""
    fig = go.Figure(
        go.Bar(
            x=recall,
            y=list(labels),
            orientation="h",
            marker_color=[_colour(k) for k in labels],
            text=[f"{r:.0%}" for r in recall],
            textposition="outside",
        )
    )
    fig.update_xaxes(range=[0, 1.2], tickformat=".0%", showticklabels=False)
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title=f"Recognised ({protocol})", height=50 + 22 * len(labels))


def waveform(samples: np.ndarray, *, sample_rate_hz: int) -> go.Figure:
    """The waveform as a min/max envelope, so long clips stay light."""
    step = max(1, len(samples) // _MAX_POINTS)
    usable = samples[: len(samples) // step * step].reshape(-1, step)
    times_s = np.arange(len(usable)) * step / sample_rate_hz
    fig = go.Figure(
        [
            go.Scatter(
                x=times_s, y=usable.max(axis=1), line={"width": 1, "color": "#1e88e5"}, name="max"
            ),
            go.Scatter(
                x=times_s,
                y=usable.min(axis=1),
                line={"width": 1, "color": "#1e88e5"},
                fill="tonexty",
                name="min",
            ),
        ]
    )
    fig.update_layout(showlegend=False)
    fig.update_xaxes(title="time (s)")
    fig.update_yaxes(title="amplitude", range=[-1, 1])
    return _layout(fig, title="Waveform")


def spectrogram(samples: np.ndarray, *, sample_rate_hz: int, n_fft: int = 1024) -> go.Figure:
    """Power spectrogram in dB with seconds and Hz on the axes."""
    hop = max(n_fft // 4, len(samples) // _MAX_COLUMNS)
    n_frames = max(1, 1 + (len(samples) - n_fft) // hop)
    padded = np.pad(samples, (0, max(0, n_fft - len(samples))))
    index = np.arange(n_fft)[np.newaxis, :] + hop * np.arange(n_frames)[:, np.newaxis]
    spectrum = np.abs(np.fft.rfft(padded[index] * np.hanning(n_fft), axis=1)) ** 2
    # dB below the loudest cell, floored 80 dB down as librosa's power_to_db(ref=np.max): the
    # colour scale is pinned to that range, so silence paints as its darkest colour, never
    # off the scale, and a silent clip is all dark rather than scaled to nothing.
    db = 10 * np.log10(np.maximum(spectrum, 1e-10) / max(float(spectrum.max()), 1e-10))
    db = np.maximum(db, -_SPECTROGRAM_RANGE_DB)
    fig = go.Figure(
        go.Heatmap(
            z=np.round(db.T).astype(np.int16),  # whole dB: 4x less to send than float64, same look
            x=np.arange(n_frames) * hop / sample_rate_hz,
            y=np.fft.rfftfreq(n_fft, 1 / sample_rate_hz),
            colorscale="Magma",
            zmin=-_SPECTROGRAM_RANGE_DB,
            zmax=0,
            colorbar={"title": "dB below peak"},
        )
    )
    fig.update_xaxes(title="time (s)")
    fig.update_yaxes(title="frequency (Hz)")
    return _layout(fig, title="Spectrogram", height=320)


def emotion_over_time(
    start_s: np.ndarray, probabilities: np.ndarray, labels: Sequence[str], *, window_s: float
) -> go.Figure:
    """Stacked probabilities at each window's centre: the emotion as the clip unfolds."""
    centres_s = start_s + window_s / 2
    fig = go.Figure(
        [
            go.Scatter(
                x=centres_s,
                y=probabilities[:, i],
                name=label,
                stackgroup="one",
                line={"width": 0.5, "color": _colour(label)},
            )
            for i, label in enumerate(labels)
        ]
    )
    fig.update_xaxes(title=f"time (s), centre of each {window_s:g} s window")
    fig.update_yaxes(title="probability", range=[0, 1], tickformat=".0%")
    return _layout(fig, title="Emotion over time", height=320)


def confusion_matrix(confusion: np.ndarray, labels: Sequence[str], *, protocol: str) -> go.Figure:
    """Rows are the true emotions, columns the predicted; cells show row percentages. The title
    names the ``protocol`` that produced it."""
    totals = np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    share = confusion / totals
    fig = go.Figure(
        go.Heatmap(
            z=share,
            x=list(labels),
            y=list(labels),
            colorscale="Blues",
            zmin=0,
            zmax=1,
            text=[
                [f"{c}<br>{s:.0%}" for c, s in zip(row, srow, strict=True)]
                for row, srow in zip(confusion, share, strict=True)
            ],
            texttemplate="%{text}",
            colorbar={"title": "share", "tickformat": ".0%"},
        )
    )
    fig.update_xaxes(title="predicted")
    fig.update_yaxes(title="true", autorange="reversed")
    return _layout(fig, title=f"Confusion matrix ({protocol})", height=80 + 45 * len(labels))


def training_curves(history: Mapping[str, Sequence[float]]) -> go.Figure:
    """Loss and accuracy per epoch for training and, when present, held-out data."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    for col, metric in enumerate(("loss", "accuracy"), start=1):
        for key, name, dash in (
            (metric, "training", "solid"),
            (f"val_{metric}", "held out, centre crops", "dash"),
        ):
            if history.get(key):
                epochs = np.arange(1, len(history[key]) + 1)
                fig.add_trace(
                    go.Scatter(
                        x=epochs, y=list(history[key]), name=f"{name} {metric}", line={"dash": dash}
                    ),
                    row=1,
                    col=col,
                )
    fig.update_xaxes(title="epoch")
    return _layout(fig, title="Training curves", height=320)


def counts_bar(counts: Mapping[str, int], *, title: str) -> go.Figure:
    """Clip counts per category (emotion, speaker, corpus)."""
    keys = list(counts)
    fig = go.Figure(
        go.Bar(x=keys, y=[counts[k] for k in keys], marker_color=[_colour(k) for k in keys])
    )
    fig.update_yaxes(title="clips")
    return _layout(fig, title=title)
