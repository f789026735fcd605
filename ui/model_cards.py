"""The Models page: every installed model in a table, then each one's card in full."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import streamlit as st

from ser import plots
from ser.card import (
    KFOLD_BY_SPEAKER,
    LEAVE_ONE_CORPUS_OUT,
    LEAVE_ONE_SPEAKER_OUT,
    RANDOM_SPLIT,
    ModelCard,
)
from ser.datasets import corpus_title
from ser.store import ModelInfo, default_model
from ui import models
from ui.describe import corpora, corpus_list, model_description
from ui.markdown import md

PLOT_CONFIG = {"displaylogo": False}
FOLD_MEANING = {
    KFOLD_BY_SPEAKER: "each fold tests on speakers left out of training",
    LEAVE_ONE_SPEAKER_OUT: "each fold tests on one speaker left out of training",
    LEAVE_ONE_CORPUS_OUT: "each fold tests on a corpus left out of training",
    RANDOM_SPLIT: "clips of the same speakers on both sides: overstated",
}


def models_overview(installed: Sequence[ModelInfo]) -> pd.DataFrame:
    default = default_model([m for m in installed if models.problem(m) is None])
    rows = []
    for m in installed:
        problem, card = models.problem(m), m.card
        rows.append(
            {
                "model": m.name,
                "status": f"broken: {problem}"
                if problem
                else ("default" if m is default else "ok"),
                "type": card.kind_title if card else "",
                "accuracy": m.accuracy,
                "UAR": m.uar,
                "protocol": f"{card.protocol_kind}: {card.protocol}"
                if card and card.protocol
                else "",
                "unseen corpora": card.unseen_mean_accuracy if card else None,
                "trained on": corpora(card) if card else "",
                "clips": card.clips if card else None,
                "speakers": card.speakers if card else None,
                "emotions": ", ".join(m.labels),
                "created (UTC)": (card.created_utc or "") if card else "",
            }
        )
    return pd.DataFrame(rows)


def show_models_overview(installed: Sequence[ModelInfo]) -> None:
    st.dataframe(
        models_overview(installed),
        hide_index=True,
        key="models-table",
        column_config={
            "accuracy": st.column_config.NumberColumn("accuracy", format="percent"),
            "UAR": st.column_config.NumberColumn("UAR", format="percent"),
            "unseen corpora": st.column_config.NumberColumn(
                "unseen corpora",
                format="percent",
                help="Mean accuracy on whole corpora the model never heard (4 emotions where measured)",
            ),
        },
    )


def cross_corpus_table(card: ModelCard) -> pd.DataFrame:
    """One row per corpus the model never heard: its figures, before and after calibration."""
    held = card.cross_corpus.held_out() if card.cross_corpus else {}
    rows = [
        {
            "held-out corpus": corpus_title(name),
            "trained on": corpus_list(f.trained_on or ()),
            "emotions": ", ".join(f.labels or ()),
            "accuracy": f.accuracy,
            "UAR": f.uar,
            "4-class accuracy": f.four_class.accuracy if f.four_class else None,
            "ECE": f.ece,
            "ECE calibrated": f.ece_calibrated,
        }
        for name, f in held.items()
    ]
    return pd.DataFrame(rows)


def show_model_details(info: ModelInfo) -> None:
    """Figures, training data, the command that reproduces it, folds and confusion matrix."""
    if (problem := models.problem(info)) is not None:
        st.error(f"This model cannot be used: {md(problem)}")
    card = info.card
    if card is None:
        return
    st.markdown(model_description(info, protocol=True))
    _show_metrics(info, card)
    if card.command:
        st.markdown("Reproduce it with:")
        st.code(card.command, language="bash", wrap_lines=True)
    _show_folds_and_confusion(info, card)
    if card.cross_corpus is not None:
        _show_cross_corpus(info, card)
    with st.expander("Training settings and metadata"):
        st.json({k: v for k, v in info.metadata.items() if k != "evaluation"}, expanded=False)


def _show_metrics(info: ModelInfo, card: ModelCard) -> None:
    kind = card.protocol_kind
    cols = st.columns(4)
    cols[0].metric(
        "Accuracy",
        f"{card.accuracy:.1%}" if card.accuracy is not None else "–",
        help=f"Share of held-out clips labelled correctly ({kind}).",
    )
    cols[1].metric(
        "UAR",
        f"{card.uar:.1%}" if card.uar is not None else "–",
        help="Unweighted average recall: the mean of each emotion's recall, so "
        f"rare emotions count as much as common ones ({kind}).",
    )
    cols[2].metric("Clips", f"{card.clips or 0:,}")
    cols[3].metric("Emotions", len(info.labels))


def _show_folds_and_confusion(info: ModelInfo, card: ModelCard) -> None:
    kind = card.protocol_kind
    folds = card.evaluation.folds if card.evaluation else None
    confusion = card.evaluation.confusion if card.evaluation else None
    if folds:
        left, right = st.columns([1, 2], gap="large")
        with left:
            meaning = FOLD_MEANING.get(kind, "each fold tests on clips left out of training")
            st.markdown(f"**Per fold** ({kind}: {meaning})")
            table = pd.DataFrame([{"accuracy": f.accuracy, "uar": f.uar, **f.extra} for f in folds])
            table.insert(0, "fold", range(1, len(folds) + 1))
            st.dataframe(
                table,
                hide_index=True,
                key=f"folds-{info.name}",
                column_config={
                    "accuracy": st.column_config.NumberColumn("accuracy", format="percent"),
                    "uar": st.column_config.NumberColumn("UAR", format="percent"),
                },
            )
    else:
        right, _ = st.columns([2, 1], gap="large")
    if confusion:
        labels = (card.evaluation.labels if card.evaluation else None) or card.labels
        with right:
            st.plotly_chart(
                plots.confusion_matrix(np.asarray(confusion), labels, protocol=kind),
                key=f"confusion-{info.name}",
                config=PLOT_CONFIG,
            )


def _show_cross_corpus(info: ModelInfo, card: ModelCard) -> None:
    protocol = (card.cross_corpus.protocol if card.cross_corpus else None) or ""
    st.markdown(
        f"**On corpora it never heard** ({protocol}). A user's voice and "
        "microphone are a new corpus, so these are the figures to expect. ECE is the gap between "
        "confidence and accuracy; *calibrated* applies the temperature the app uses, fitted on "
        "the other corpora."
    )
    st.dataframe(
        cross_corpus_table(card),
        hide_index=True,
        key=f"corpora-{info.name}",
        column_config={
            c: st.column_config.NumberColumn(c, format="percent")
            for c in ("accuracy", "UAR", "4-class accuracy")
        },
    )
