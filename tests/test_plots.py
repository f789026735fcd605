"""ser.plots: figures that say what they show, on scales that hold their data."""

from __future__ import annotations

import numpy as np

from ser import plots
from ser.emotions import ALL_EMOTIONS, COLOURS, EMOJI
from tests import signals


def test_silence_in_a_spectrogram_paints_inside_its_colour_scale() -> None:
    speech = signals.speech_like(duration_s=1.0, sample_rate_hz=16_000)
    clip = np.concatenate([np.zeros(16_000, np.float32), speech, np.zeros(8_000, np.float32)])

    for samples in (clip, np.zeros(16_000, np.float32)):
        [heatmap] = plots.spectrogram(samples, sample_rate_hz=16_000).data
        z = np.asarray(heatmap.z)
        assert (heatmap.zmin, heatmap.zmax) == (-80, 0)
        assert z.min() >= heatmap.zmin and z.max() <= heatmap.zmax
    assert z.max() == z.min()  # a silent clip is one colour, not a scale stretched over nothing


def test_every_held_out_figure_names_its_protocol() -> None:
    confusion = np.array([[3, 1], [0, 4]])
    for protocol in ("random split", "k-fold by speaker"):
        assert (
            protocol
            in plots.confusion_matrix(confusion, ["a", "b"], protocol=protocol).layout.title.text
        )
        assert (
            protocol
            in plots.recall_bars([0.75, 1.0], ["a", "b"], protocol=protocol).layout.title.text
        )


def test_the_curves_say_their_held_out_line_is_on_centre_crops() -> None:
    figure = plots.training_curves({"accuracy": [0.5, 0.6], "val_accuracy": [0.2, 0.22]})
    assert "held out, centre crops accuracy" in [trace.name for trace in figure.data]


def test_every_emotion_has_one_colour_in_every_chart_and_an_emoji() -> None:
    assert set(COLOURS) == set(EMOJI) == set(ALL_EMOTIONS)
    assert len(set(COLOURS.values())) == len(ALL_EMOTIONS)  # told apart at a glance
    bars = plots.probability_bars({"sad": 0.7, "happy": 0.3}).data[0]
    assert list(bars.marker.color) == [COLOURS["happy"], COLOURS["sad"]]
    [timeline] = plots.emotion_over_time(np.zeros(1), np.ones((1, 1)), ["angry"], window_s=3.0).data
    assert timeline.line.color == COLOURS["angry"]
