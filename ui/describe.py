"""What a model is and how well it did, in the words every page uses; read from its card."""

from __future__ import annotations

from collections.abc import Iterable

from ser.card import LEAVE_ONE_CORPUS_OUT, RANDOM_SPLIT, ModelCard, protocol_kind
from ser.datasets import corpus_title
from ser.store import ModelInfo


def corpus_list(names: Iterable[str]) -> str:
    """Corpora as people name them, e.g. "RAVDESS, TESS"."""
    return ", ".join(corpus_title(n) for n in names)


def corpora(card: ModelCard | None) -> str:
    """The corpora the model learnt from."""
    return (corpus_list(card.corpora) if card is not None else "") or "unknown data"


def measured_on(protocol: str) -> str:
    """Where a figure was measured, e.g. "on speakers it never heard (k-fold by speaker)".

    A random split's test clips share speakers with training, so it is never said to be on
    unseen speakers.
    """
    kind = protocol_kind(protocol)
    if kind == RANDOM_SPLIT:
        return f"on a {RANDOM_SPLIT} (speakers leak into the test, so it is overstated)"
    if kind == LEAVE_ONE_CORPUS_OUT:
        return f"on corpora it never heard ({kind})"
    return f"on speakers it never heard ({kind})"


def unseen_corpora_figure(card: ModelCard) -> str | None:
    """One sentence on how the model does on corpora it never heard, or None if not measured."""
    across = card.cross_corpus
    summary = across.best_summary if across is not None else None
    if across is None or summary is None:
        return None
    which = "4 emotions" if summary is across.four_class else "the emotions they share"
    return (
        f"On corpora it never heard ({corpus_list(across.corpora or {})}; {across.protocol or ''}): "
        f"{summary.mean_accuracy:.1%} mean accuracy on {which}, "
        f"worst {summary.worst_accuracy or 0.0:.1%}"
    )


def model_description(info: ModelInfo, *, protocol: bool = False) -> str:
    """A sentence or two on what the model is and how well it did, naming the protocol;
    ``protocol`` adds the saved protocol's own words (which speakers, which folds)."""
    card = info.card
    if card is None:
        return f"**Model.** Not evaluated on held-out data. Trained on {corpora(None)}."
    if card.accuracy is not None:
        figures = f"{card.accuracy:.1%} accuracy"
        if card.uar is not None:
            figures += f", {card.uar:.1%} UAR"
        figures += f" {measured_on(card.protocol)}"
        if protocol and card.protocol:
            figures += f": {card.protocol}"
    else:
        figures = "Not evaluated on held-out data"
    if (unseen := unseen_corpora_figure(card)) is not None:
        figures += f". {unseen}"
    data = f"Trained on {corpora(card)}"
    if card.clips:
        data += f": {card.clips:,} clips"
        if card.speakers:
            data += f" from {card.speakers} speakers"
    return f"**{card.kind_title}.** {figures}. {data}."
