"""Batch prediction (ser.batch, ``predict`` on folders and patterns): which files, JSON lines
written as they come, a resumed run that redoes nothing, worker processes, bounded queues."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ser import batch, cli
from ser.errors import SERError
from tests.signals import speech_like, write_audio


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def test_folders_and_patterns_expand_lazily_to_audio_files_in_sorted_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _touch(tmp_path, "b/2.wav", "b/1.FLAC", "a/z.mp3", "a/deep/er/x.m4a", "a/notes.txt", "c.ogg")
    monkeypatch.chdir(tmp_path)
    assert list(batch.expand(["."])) == [
        "./a/deep/er/x.m4a",
        "./a/z.mp3",
        "./b/1.FLAC",
        "./b/2.wav",
        "./c.ogg",
    ]
    assert list(batch.expand(["b", "a/*"])) == [  # a folder matched: its audio files
        "b/1.FLAC",
        "b/2.wav",
        "a/deep/er/x.m4a",
        "a/z.mp3",
    ]
    assert list(batch.expand(["a/**/*.m4a"])) == ["a/deep/er/x.m4a"]
    assert list(batch.expand(["**/[12].*"])) == ["b/1.FLAC", "b/2.wav"]
    assert list(batch.expand(["*.ogg", "?/*.mp3"])) == ["c.ogg", "a/z.mp3"]
    assert list(batch.expand([str(tmp_path / "b" / "*.wav")])) == [str(tmp_path / "b/2.wav")]
    # A file named as such is answered (or refused with its reason) whatever its ending.
    assert list(batch.expand(["a/notes.txt", "missing.wav", "nothing/*.wav"])) == [
        "a/notes.txt",
        "missing.wav",
    ]
    generator = batch.expand(["."])
    assert next(generator) == "./a/deep/er/x.m4a"  # before the rest of the tree is read
    assert batch.wants_batch(["a"]) and batch.wants_batch(["*.ogg"])
    assert not batch.wants_batch(["c.ogg", "missing.wav"])


def test_a_resumed_output_drops_a_line_cut_short_and_refuses_a_foreign_file(
    tmp_path: Path,
) -> None:
    output = tmp_path / "out.jsonl"
    assert batch.finished(output) == set()
    lines = [
        json.dumps({"file": "a.wav", "emotion": "sad"}),
        json.dumps({"file": "b", "error": "x"}),
    ]
    output.write_text("\n".join(lines) + '\n{"file": "c.wav", "emo')
    assert batch.finished(output) == {"a.wav", "b"}
    assert output.read_text() == "\n".join(lines) + "\n"  # ready to be appended to
    (tmp_path / "notes.jsonl").write_text("meeting notes\nmore\n")
    with pytest.raises(SERError, match="not one of predict's answers"):
        batch.finished(tmp_path / "notes.jsonl")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "clips"
    for i in range(5):
        (root / f"speaker{i % 2}").mkdir(parents=True, exist_ok=True)
        write_audio(
            root / f"speaker{i % 2}" / f"clip{i}.wav",
            speech_like(duration_s=1.2, sample_rate_hz=16_000, seed=i, speech_fraction=1.0),
            sample_rate_hz=16_000,
        )
    (root / "speaker0" / "broken.wav").write_text("not audio")
    return root


def _answers(output: Path) -> dict[str, dict]:
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(lines) == len({line["file"] for line in lines})  # each file once
    return {line["file"]: line for line in lines}


def test_predict_on_a_folder_writes_json_lines_and_resumes_without_redoing_a_file(
    folder: Path,
    tiny_models_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = tmp_path / "answers.jsonl"
    command = ["--models-dir", str(tiny_models_dir), "predict", "--model", "tiny-classic"]
    assert cli.main([*command, "--output", str(output), str(folder)]) == 1  # one failed
    captured = capsys.readouterr()
    answers = _answers(output)
    assert sorted(answers) == sorted(batch.expand([str(folder)]))
    assert len(answers) == 6
    broken = answers.pop(str(folder / "speaker0" / "broken.wav"))
    assert "not a recognisable audio file" in broken["error"]
    for line in answers.values():
        assert line["emotion"] == max(line["probabilities"], key=line["probabilities"].get)
        assert line["model"] == "tiny-classic"
    assert captured.out == ""  # the answers went to the file
    assert "6/6 files" in captured.err
    assert "6 files answered (1 failed), 0 skipped as already done" in captured.err

    # Killed after four answers, halfway through writing the fifth: the run again answers
    # only the two missing, and says it skipped four.
    kept = output.read_text().splitlines()[:4]
    output.write_text("\n".join(kept) + '\n{"file": "' + str(folder))
    cli.main([*command, "--output", str(output), str(folder)])
    assert "2 files answered" in capsys.readouterr().err
    assert output.read_text().splitlines()[:4] == kept
    assert sorted(_answers(output)) == sorted(batch.expand([str(folder)]))

    before = output.read_text()
    assert cli.main([*command, "--output", str(output), str(folder)]) == 0  # nothing failed now
    assert "0 files answered (0 failed), 6 skipped as already done" in capsys.readouterr().err
    assert output.read_text() == before


def test_predict_on_a_pattern_without_output_prints_what_predict_json_prints(
    folder: Path, tiny_models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["--models-dir", str(tiny_models_dir), "predict", "--model", "tiny-classic"]
    clip = folder / "speaker1" / "clip1.wav"
    assert cli.main([*command, "--json", str(clip)]) == 0
    single = capsys.readouterr().out
    assert cli.main([*command, "--json", str(folder / "speaker1" / "*.wav")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0] == single.strip()  # the same object, byte for byte
    cli.main([*command, str(folder / "speaker1" / "clip3.wav"), str(folder / "speaker[1]")])
    text = capsys.readouterr().out.splitlines()  # clip3 named twice, answered once
    assert [line.split(": ")[0] for line in text] == [
        str(folder / "speaker1" / "clip3.wav"),
        str(folder / "speaker1" / "clip1.wav"),
    ]
    assert all(line.endswith("%") or "%  (" in line for line in text)


@pytest.mark.slow
def test_two_worker_processes_answer_everything_with_a_bounded_queue(
    folder: Path, tiny_models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pulled, written, most_queued = [0], [0], [0]
    expand, seen = batch.expand, set()

    def counted(arguments: list[str]):  # noqa: ANN202
        for path in expand(arguments):
            pulled[0] += path not in seen  # repeats are skipped, never queued
            seen.add(path)
            yield path

    def sink(line: dict) -> None:
        written[0] += 1
        most_queued[0] = max(most_queued[0], pulled[0] - written[0] + 1)

    monkeypatch.setattr(batch, "expand", counted)
    many = [str(folder)] + [str(p) for p in sorted(folder.rglob("*.wav"))] * 3  # repeats
    output = tmp_path / "two.jsonl"
    summary = batch.run(
        many,
        model="tiny-classic",
        models_dir=tiny_models_dir,
        jobs=2,
        output=output,
        sink=sink,
        progress=False,
    )
    assert (summary.answered, summary.failed) == (5, 1)
    assert summary.skipped == 18  # the same files named again
    assert most_queued[0] <= batch.IN_FLIGHT_PER_JOB * 2
    answers = _answers(output)
    assert len(answers) == 6
    assert os.path.getsize(output) > 0
