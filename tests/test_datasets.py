"""Dataset layouts: labels from names, skip reasons, duplicates, errors, and the real corpora."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser.datasets import (
    LAYOUTS_HELP,
    Corpus,
    LabelledClip,
    ScanReport,
    label_file,
    ravdess_actor,
    scan,
)
from ser.emotions import ALL_EMOTIONS
from ser.errors import DatasetError

RATE = 16_000
_frequencies = itertools.count(200, 37)  # a new pitch per file, so no two are duplicates


def tone(path: Path, *, freq: float | None = None, seconds: float = 0.05) -> Path:
    """Write a short 16-bit tone (format from the suffix) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(RATE * seconds)) / RATE
    hz = next(_frequencies) if freq is None else freq
    # int16 samples: WAV and FLAC writers round floats differently, integers exactly.
    samples = (16_000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    sf.write(path, samples, RATE, subtype="PCM_16")
    return path


def tree(root: Path, *names: str) -> Path:
    """A folder of tones at the given relative paths."""
    for name in names:
        tone(root / name)
    return root


def reasons(report: ScanReport) -> dict[str, str]:
    return {s.path.name: s.reason for s in report.skipped}


# --- names -> labels (no file access) ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "emotion", "speaker", "corpus"),
    [
        ("Actor_01/03-01-05-01-01-01-01.wav", "angry", "ravdess:01", Corpus.RAVDESS),
        ("Actor_24/03-01-08-02-02-02-24.flac", "surprised", "ravdess:24", Corpus.RAVDESS),
        ("Actor_07/03-01-02-01-01-01-07.FLAC", "calm", "ravdess:07", Corpus.RAVDESS),
        ("OAF_angry/OAF_back_angry.wav", "angry", "tess:OAF", Corpus.TESS),
        ("YAF_fear/YAF_bath_fear.flac", "fearful", "tess:YAF", Corpus.TESS),
        ("OAF_pleasant_surprise/OAF_bite_ps.wav", "surprised", "tess:OAF", Corpus.TESS),
        ("YAF_surprise/YAF_beg_pleasant_surprise.wav", "surprised", "tess:YAF", Corpus.TESS),
        ("OAF_neutral/OA_bite_neutral.flac", "neutral", "tess:OAF", Corpus.TESS),
        ("OA_bite_neutral.wav", "neutral", "tess:OAF", Corpus.TESS),
        ("ALL/DC_a01.wav", "angry", "savee:DC", Corpus.SAVEE),
        ("ALL/JE_sa03.wav", "sad", "savee:JE", Corpus.SAVEE),
        ("ALL/KL_su15.wav", "surprised", "savee:KL", Corpus.SAVEE),
        ("ALL/JK_f02.wav", "fearful", "savee:JK", Corpus.SAVEE),
        ("AudioData/DC/n10.wav", "neutral", "savee:DC", Corpus.SAVEE),
        ("AudioWAV/1001_DFA_ANG_XX.wav", "angry", "crema-d:1001", Corpus.CREMA_D),
        ("AudioWAV/1091_WSI_FEA_HI.wav", "fearful", "crema-d:1091", Corpus.CREMA_D),
        ("wav/03a01Fa.wav", "happy", "emodb:03", Corpus.EMODB),
        ("wav/16b10Wb.wav", "angry", "emodb:16", Corpus.EMODB),
        ("wav/11a05Tc.wav", "sad", "emodb:11", Corpus.EMODB),
        ("01Neutral/n1-01-01-01-29.ogg", "neutral", "ased:29", Corpus.ASED),
        ("04Sad/S4-04-02-01-29.wav", "sad", "ased:29", Corpus.ASED),  # the upper-case letter
        ("02Fearful/f2-10-01-02-65.wav", "fearful", "ased:65", Corpus.ASED),
        ("renamed/a5-03-01-02-07.wav", "angry", "ased:07", Corpus.ASED),  # no folder: the letter
        (
            "webservice/help-safe-calm-1563000375725-016294ed23957d10d65f226e2534b9f4952eb3.ogg",
            "calm",
            "emospeech:016294ed2395",
            Corpus.EMOSPEECH,
        ),
        (
            "webservice/no-safe-fearful-??-4fb5bdfcd8619b7c7c187c98918c9d5fbe9decf63f.wav",
            "fearful",
            "emospeech:4fb5bdfcd861",
            Corpus.EMOSPEECH,
        ),
        ("mine/Angry/take1.wav", "angry", "folders:unknown", Corpus.FOLDERS),
        ("mine/joy/take1.ogg", "happy", "folders:unknown", Corpus.FOLDERS),
        ("mine/scared/x.mp3", "fearful", "folders:unknown", Corpus.FOLDERS),
        ("mine/PS/x.wav", "surprised", "folders:unknown", Corpus.FOLDERS),
        ("mine/calm/x.wav", "calm", "folders:unknown", Corpus.FOLDERS),
        ("mine/disgusted/x.wav", "disgust", "folders:unknown", Corpus.FOLDERS),
        ("mine/sadness/x.wav", "sad", "folders:unknown", Corpus.FOLDERS),
    ],
)
def test_label_file_reads_each_layout(
    name: str, emotion: str, speaker: str, corpus: Corpus
) -> None:
    path = Path("/data", name)
    assert label_file(path) == LabelledClip(path, emotion, speaker, corpus)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("notes.txt", "not an audio file (.txt)"),
        ("README", "not an audio file (no extension)"),
        ("Actor_01/03-02-03-01-01-01-01.wav", "song, not speech"),
        ("Actor_01/03-01-09-01-01-01-01.wav", "unknown emotion code 09"),
        ("Actor_01/01-01-03-01-01-01-01.wav", "not audio-only (modality 01)"),
        ("wav/03a01La.wav", "boredom is not one of the 8 emotions"),
        ("wav/03a01Xa.wav", "unknown emotion code X"),
        ("AudioWAV/1001_DFA_XYZ_XX.wav", "unknown emotion code XYZ"),
        ("ALL/DC_z01.wav", "unknown emotion code z"),
        ("OAF_x/OAF_back_bored.wav", "unknown emotion 'bored'"),
        ("misc/recording.wav", "name not recognised as any known layout"),
        ("angry_take.wav", "name not recognised as any known layout"),
    ],
)
def test_label_file_gives_plain_reasons(name: str, reason: str) -> None:
    assert label_file(Path("/data", name)) == reason


def test_strict_names_win_over_the_folder_rule() -> None:
    clip = label_file(Path("/data/happy/03-01-05-01-01-01-01.wav"))
    assert isinstance(clip, LabelledClip)
    assert (clip.corpus, clip.emotion) == (Corpus.RAVDESS, "angry")


@pytest.mark.parametrize(
    ("speaker", "actor"),
    [("ravdess:01", 1), ("ravdess:24", 24), ("tess:OAF", None), ("ravdess:", None), ("x", None)],
)
def test_ravdess_actor(speaker: str, actor: int | None) -> None:
    assert ravdess_actor(speaker) == actor


def test_layouts_help_has_one_line_per_layout() -> None:
    lines = LAYOUTS_HELP.splitlines()
    assert len(lines) == len(Corpus)
    for name in ("RAVDESS", "TESS", "SAVEE", "CREMA-D", "EmoDB", "subfolder per emotion"):
        assert name in LAYOUTS_HELP


# --- scanning fake trees ----------------------------------------------------------------


def test_scan_ravdess_tree(tmp_path: Path) -> None:
    root = tree(
        tmp_path / "ravdess",
        "Actor_01/03-01-05-01-01-01-01.wav",
        "Actor_01/03-01-01-01-01-01-01.wav",
        "Actor_02/03-01-05-02-01-01-02.flac",
        "Actor_02/03-02-03-01-01-01-02.wav",
        "Actor_02/03-01-09-01-01-01-02.wav",
    )
    report = scan([root])
    assert report.emotion_counts() == {"neutral": 1, "angry": 2}
    assert report.speaker_counts() == {"ravdess:01": 2, "ravdess:02": 1}
    assert report.layouts == {"ravdess": 3}
    assert report.corpora == (Corpus.RAVDESS,)
    assert reasons(report) == {
        "03-02-03-01-01-01-02.wav": "song, not speech",
        "03-01-09-01-01-01-02.wav": "unknown emotion code 09",
    }
    assert report.duplicates == ()
    assert report.total_seconds == pytest.approx(3 * 0.05)


def test_scan_is_sorted_and_deterministic(tmp_path: Path) -> None:
    root = tree(tmp_path, "b/angry/2.wav", "a/sad/1.wav", "b/angry/1.wav", "a/happy/x.wav")
    names = [c.path.relative_to(root).as_posix() for c in scan([root]).clips]
    assert names == ["a/happy/x.wav", "a/sad/1.wav", "b/angry/1.wav", "b/angry/2.wav"]
    assert scan([root]) == scan([str(root)])


def test_scan_tess_tree_with_the_prefix_typo(tmp_path: Path) -> None:
    root = tree(
        tmp_path / "tess",
        "OAF_neutral/OAF_back_neutral.wav",
        "OAF_neutral/OA_bite_neutral.wav",
        "OAF_pleasant_surprise/OAF_bite_ps.wav",
        "YAF_fear/YAF_back_fear.wav",
        "YAF_sad/YAF_bath_sad.wav",
    )
    report = scan([root])
    assert report.speaker_counts() == {"tess:OAF": 3, "tess:YAF": 2}
    assert report.emotions == ("neutral", "sad", "fearful", "surprised")
    assert report.skipped == ()


def test_scan_other_corpora(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        "savee/DC_a01.wav",
        "savee/DC_sa02.wav",
        "savee/JK_su03.wav",
        "crema/1001_DFA_ANG_XX.wav",
        "crema/1002_IEO_NEU_LO.wav",
        "emodb/03a01Fa.wav",
        "emodb/03a01La.wav",
        "emodb/08b02Tb.wav",
    )
    report = scan([root])
    assert report.corpus_counts() == {Corpus.SAVEE: 3, Corpus.CREMA_D: 2, Corpus.EMODB: 2}
    assert report.speakers == (
        "crema-d:1001",
        "crema-d:1002",
        "emodb:03",
        "emodb:08",
        "savee:DC",
        "savee:JK",
    )
    assert reasons(report) == {"03a01La.wav": "boredom is not one of the 8 emotions"}


def test_scan_generic_folders_and_junk(tmp_path: Path) -> None:
    root = tree(tmp_path, "Angry/a.wav", "HAPPY/b.WAV", "fear/c.flac", "misc/d.wav")
    (root / "Angry" / "notes.txt").write_text("hello")
    (root / ".hidden").mkdir()
    tone(root / ".hidden" / "angry" / "e.wav")  # hidden folders are not walked
    (root / ".DS_Store").write_bytes(b"\0")
    report = scan([root])
    assert report.emotion_counts() == {"happy": 1, "angry": 1, "fearful": 1}
    assert report.speakers == ("folders:unknown",)
    assert reasons(report) == {
        "notes.txt": "not an audio file (.txt)",
        "d.wav": "name not recognised as any known layout",
    }


def test_unreadable_and_empty_files_are_skipped(tmp_path: Path) -> None:
    root = tree(tmp_path, "angry/ok.wav")
    (root / "angry" / "text.wav").write_text("not audio at all")
    sf.write(root / "angry" / "silent.wav", np.zeros(0), RATE, subtype="PCM_16")
    report = scan([root])
    assert [c.path.name for c in report.clips] == ["ok.wav"]
    why = reasons(report)
    assert why["text.wav"].startswith("unreadable: ")
    assert why["silent.wav"] == "empty audio (no samples)"


def test_same_samples_under_two_names_are_kept_once(tmp_path: Path) -> None:
    first = tone(tmp_path / "angry" / "a.wav", freq=440)
    second = tone(tmp_path / "sad" / "b.wav", freq=440)
    other = tone(tmp_path / "sad" / "c.wav", freq=450)
    report = scan([tmp_path])
    assert [c.path for c in report.clips] == [first, other]
    assert report.duplicates == ((first, second),)
    assert reasons(report) == {"b.wav": "duplicate of angry/a.wav"}


def test_wav_and_flac_of_the_same_samples_are_duplicates(tmp_path: Path) -> None:
    wav = tone(tmp_path / "a" / "03-01-05-01-01-01-01.wav", freq=300)
    flac = tone(tmp_path / "b" / "03-01-05-01-01-01-01.flac", freq=300)
    assert wav.stat().st_size != flac.stat().st_size
    report = scan([tmp_path / "a", tmp_path / "b"])
    assert report.duplicates == ((wav, flac),)
    assert reasons(report) == {flac.name: f"duplicate of {wav}"}  # other folder: full path


def test_duplicates_can_be_kept(tmp_path: Path) -> None:
    tone(tmp_path / "angry" / "a.wav", freq=440)
    tone(tmp_path / "angry" / "b.wav", freq=440)
    report = scan([tmp_path], find_duplicates=False)
    assert len(report.clips) == 2
    assert report.duplicates == ()


def test_overlapping_folders_list_each_file_once(tmp_path: Path) -> None:
    tree(tmp_path, "angry/a.wav", "sad/b.wav")
    report = scan([tmp_path / "angry", tmp_path, tmp_path])
    assert len(report.clips) == 2
    assert report.duplicates == ()


def test_progress_reaches_the_total(tmp_path: Path) -> None:
    tree(tmp_path, *(f"angry/{i}.wav" for i in range(5)))
    calls: list[tuple[int, int]] = []
    scan([tmp_path], progress=lambda done, total: calls.append((done, total)))
    assert calls
    assert calls[-1][0] == calls[-1][1]
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_missing_folder_names_it_and_the_layouts(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found") as caught:
        scan([tmp_path / "nowhere"])
    assert "nowhere" in str(caught.value)
    assert LAYOUTS_HELP in str(caught.value)


def test_file_instead_of_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="Not a folder"):
        scan([tone(tmp_path / "angry.wav")])


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="holds no files"):
        scan([tmp_path])


def test_no_folder_given() -> None:
    with pytest.raises(DatasetError, match="No dataset folder"):
        scan([])


def test_folder_without_usable_clips_lists_why(tmp_path: Path) -> None:
    good = tree(tmp_path / "good", "angry/a.wav")
    bad = tree(tmp_path / "bad", "misc/x.wav", "Actor_01/03-02-03-01-01-01-01.wav")
    with pytest.raises(DatasetError, match="No usable clips") as caught:
        scan([good, bad])
    message = str(caught.value)
    assert str(bad) in message
    assert "song, not speech" in message
    assert "name not recognised" in message


# --- the real corpora -------------------------------------------------------------------


def _corpus(shared_data_dir: Path, name: str) -> Path:
    folder = shared_data_dir / name
    if not folder.is_dir():
        pytest.skip(f"{name} not found in {shared_data_dir}")
    return folder


@pytest.mark.data
def test_real_ravdess(shared_data_dir: Path) -> None:
    report = scan([_corpus(shared_data_dir, "ravdess")], find_duplicates=False)
    assert len(report.clips) == 1440
    assert report.layouts == {"ravdess": 1440}
    assert report.emotion_counts() == {e: 96 if e == "neutral" else 192 for e in report.emotions}
    assert len(report.emotions) == 8
    assert len(report.speakers) == 24
    assert set(report.speaker_counts().values()) == {60}
    assert report.skipped == ()


@pytest.mark.data
def test_real_ravdess_has_one_known_duplicate(shared_data_dir: Path) -> None:
    # Actor 07's two repetitions of happy/statement 2 are byte-identical in the original
    # release; other SER write-ups report the same pair.
    root = _corpus(shared_data_dir, "ravdess").resolve()  # scan reports resolved paths
    report = scan([root])
    pairs = [tuple(p.relative_to(root).as_posix() for p in pair) for pair in report.duplicates]
    assert pairs == [("Actor_07/03-01-03-01-02-01-07.flac", "Actor_07/03-01-03-01-02-02-07.flac")]
    assert len(report.clips) == 1439
    assert report.emotion_counts()["happy"] == 191


@pytest.mark.data
def test_real_tess(shared_data_dir: Path) -> None:
    report = scan([_corpus(shared_data_dir, "tess")])
    assert len(report.clips) == 2798
    assert set(report.emotions) == set(ALL_EMOTIONS) - {"calm"}
    assert report.speakers == ("tess:OAF", "tess:YAF")
    assert report.duplicates == ()
    assert report.skipped == ()


@pytest.mark.slow
@pytest.mark.data
def test_real_ased(shared_data_dir: Path) -> None:
    report = scan([_corpus(shared_data_dir, "ased")])
    # 2,474 files, four of which hold the same audio as another file of the same speaker.
    assert len(report.clips) + len(report.duplicates) == 2474
    assert len(report.duplicates) == 4
    assert set(report.corpora) == {Corpus.ASED}
    assert len(report.speakers) == 65
    assert set(report.emotions) == {"neutral", "fearful", "happy", "sad", "angry"}
    assert report.skipped == tuple(s for s in report.skipped if s.reason.startswith("duplicate of"))


@pytest.mark.slow
@pytest.mark.data
def test_real_emospeech(shared_data_dir: Path) -> None:
    report = scan([_corpus(shared_data_dir, "emospeech")])
    assert len(report.clips) == 400
    assert report.emotion_counts() == {"calm": 100, "happy": 100, "angry": 100, "fearful": 100}
    assert set(report.corpora) == {Corpus.EMOSPEECH}
    assert 70 <= len(report.speakers) <= 400
    assert report.skipped == ()
