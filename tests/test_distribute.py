"""Training beyond one device (ser.distribute): the scaling rule, TF_CONFIG, backups that let a
killed run resume, and both strategies for real on CPU: two logical devices, and two worker
processes on localhost."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ser import distribute
from ser.distribute import Backup, Distribution, Role, Scaling, Strategy
from ser.errors import TrainingError
from tests.conftest import make_tiny_corpus

ROOT = Path(__file__).parents[1]

# --- the scaling rule --------------------------------------------------------------------


def test_the_global_batch_and_learning_rate_scale_with_the_replicas() -> None:
    spread = Scaling(Strategy.MIRRORED, 4, per_replica_batch_size=16, base_learning_rate=1e-3)
    assert spread.global_batch_size == 64
    assert spread.learning_rate == pytest.approx(4e-3)
    assert spread.to_dict() == {
        "strategy": "mirrored",
        "replicas": 4,
        "per_replica_batch_size": 16,
        "global_batch_size": 64,
        "learning_rate": pytest.approx(4e-3),
    }


def test_one_device_keeps_the_recipe_without_starting_tensorflow() -> None:
    spread = distribute.scaling(
        Strategy.DEFAULT, per_replica_batch_size=32, base_learning_rate=3e-3
    )
    assert (spread.replicas, spread.global_batch_size, spread.learning_rate) == (1, 32, 3e-3)


# --- TF_CONFIG ---------------------------------------------------------------------------


def _tf_config(cluster: dict[str, list[str]], task_type: str, index: int) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


TWO_WORKERS = {"worker": ["a:1", "b:1"]}
CHIEF_AND_TWO = {"chief": ["c:1"], "worker": ["a:1", "b:1"]}


@pytest.mark.parametrize(
    ("cluster", "task_type", "index", "expected"),
    [
        (TWO_WORKERS, "worker", 0, Role("worker", 0, 2, chief=True)),
        (TWO_WORKERS, "worker", 1, Role("worker", 1, 2, chief=False)),
        (CHIEF_AND_TWO, "chief", 0, Role("chief", 0, 3, chief=True)),
        (CHIEF_AND_TWO, "worker", 0, Role("worker", 0, 3, chief=False)),
        ({"worker": ["a:1"], "ps": ["p:1"]}, "worker", 0, Role("worker", 0, 1, chief=True)),
    ],
)
def test_tf_config_gives_this_process_its_role(
    cluster: dict[str, list[str]], task_type: str, index: int, expected: Role
) -> None:
    assert distribute.role_from_tf_config(_tf_config(cluster, task_type, index)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "needs TF_CONFIG"),
        ("", "needs TF_CONFIG"),
        ("{not json", "not a cluster and a task"),
        ('{"cluster": {"worker": ["a:1"]}}', "not a cluster and a task"),
        ('["worker"]', "not a cluster and a task"),
        (_tf_config(TWO_WORKERS, "worker", 2), "task worker 2 is not in its cluster (2 worker)"),
        (_tf_config(TWO_WORKERS, "chief", 0), "task chief 0 is not in its cluster"),
    ],
)
def test_a_wrong_tf_config_is_refused_with_what_is_wrong(text: str | None, message: str) -> None:
    with pytest.raises(TrainingError, match=re.escape(message)):
        distribute.role_from_tf_config(text)


def test_only_the_chief_writes_backups_and_removes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    multi = Distribution(Strategy.MULTIWORKER, tmp_path / "backups")
    monkeypatch.setenv("TF_CONFIG", _tf_config(TWO_WORKERS, "worker", 1))
    assert distribute.backup_for(multi, identity="fit").writer is False
    (tmp_path / "backups").mkdir()
    distribute.remove_backups(multi)
    assert (tmp_path / "backups").is_dir()  # not worker 1's to remove
    monkeypatch.setenv("TF_CONFIG", _tf_config(TWO_WORKERS, "worker", 0))
    chief = distribute.backup_for(multi, identity="fit")
    assert chief.writer is True
    assert chief.folder == distribute.backup_for(multi, identity="fit").folder  # stable
    assert chief.folder != distribute.backup_for(multi, identity="another fit").folder
    distribute.remove_backups(multi)
    assert not (tmp_path / "backups").exists()
    assert distribute.backup_for(Distribution(), identity="fit") is None


def test_an_unreadable_backup_says_to_delete_it(tmp_path: Path) -> None:
    (tmp_path / distribute.STATE_FILE).write_text('{"epoch": 3, "weights": "gone.weights.h5"}')
    with pytest.raises(TrainingError, match=r"cannot be read .*delete it to start over"):
        Backup(tmp_path).epochs_done()
    assert list(distribute.backed_up_fits(Distribution(backup_dir=tmp_path / "none"))) == []


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_corpus(tmp_path_factory.mktemp("distribute_corpus"))


# --- a killed fit resumes where it was ----------------------------------------------------


class Killed(Exception):
    """Stands for the process dying between two epochs."""


def _fit(backup: Backup | None, *, epochs: int, kill_after: int | None = None):  # noqa: ANN202
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = keras.utils.to_categorical((x[:, 0] + x[:, 1] > 0).astype(int), 2)

    def build() -> keras.Model:
        model = keras.Sequential(
            [keras.Input((6,)), keras.layers.Dense(8), keras.layers.Dense(2, activation="softmax")]
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy")
        return model

    class KillAfter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if kill_after is not None and epoch + 1 == kill_after:
                raise Killed

    # One batch an epoch: Keras shuffles the order of a PyDataset's batches every epoch from
    # Python's random state, which a resumed process cannot replay.
    class Batches(keras.utils.PyDataset):
        def __len__(self) -> int:
            return 1

        def __getitem__(self, i: int):  # noqa: ANN204
            return x, y

    spread = distribute.scaling(
        Strategy.DEFAULT, per_replica_batch_size=64, base_learning_rate=1e-2
    )
    return distribute.fit_network(
        build,
        Batches(),
        spread=spread,
        epochs=epochs,
        validation_data=None,
        callbacks=[KillAfter()],
        backup=backup,
    )


@pytest.mark.slow
def test_a_fit_killed_midway_resumes_from_its_backup_as_if_never_stopped(tmp_path: Path) -> None:
    backup = Backup(tmp_path / "fit")
    with pytest.raises(Killed):
        _fit(backup, epochs=5, kill_after=2)
    assert backup.epochs_done() == 2
    assert sorted(p.name for p in backup.folder.iterdir()) == [
        "epoch-00002.weights.h5",  # only the latest epoch is kept
        distribute.STATE_FILE,
    ]
    resumed, history = _fit(backup, epochs=5)
    assert len(history["loss"]) == 3  # epochs 3 to 5: the first two were not redone
    straight, _ = _fit(None, epochs=5)
    for ours, theirs in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)  # optimizer state too


@pytest.mark.slow
def test_a_worker_that_is_not_the_chief_restores_but_never_writes(tmp_path: Path) -> None:
    with pytest.raises(Killed):
        _fit(Backup(tmp_path / "fit"), epochs=3, kill_after=1)
    reader = Backup(tmp_path / "fit", writer=False)
    _, history = _fit(reader, epochs=3)
    assert len(history["loss"]) == 2
    assert reader.epochs_done() == 1  # the chief's backup, untouched


@pytest.mark.slow
def test_a_training_run_killed_midway_resumes_each_fit_from_its_own_backup(
    corpus: Path, tmp_path: Path
) -> None:
    from ser import train
    from ser.models import ModelType

    options = train.TrainOptions(
        model_type=ModelType.MFCC_LSTM,
        epochs=4,
        distribution=Distribution(backup_dir=tmp_path / "backups"),
    )
    data = train.prepare([corpus], options, cache_dir=tmp_path / "cache")
    index = np.arange(len(data.clips))
    seen: list[train.Progress] = []

    def kill_at_epoch_2(progress: train.Progress) -> None:
        seen.append(progress)
        if progress.done == 2:
            raise Killed

    with pytest.raises(Killed):
        train.fit(data, index, options, progress=kill_at_epoch_2, stage="final model")
    seen.clear()
    _, history = train.fit(data, index, options, progress=seen.append, stage="final model")
    assert seen[0].done == 2 and seen[0].elapsed_s == 0.0  # where the resumed fit starts
    assert [p.done for p in seen[1:]] == [3, 4]
    assert len(history["loss"]) == 2
    # Another fit of the same run (another stage) has a backup of its own: it starts afresh.
    _, other = train.fit(data, index[:60], options, stage="fold 1")
    assert len(other["loss"]) == 4


# --- both strategies for real, on CPU ----------------------------------------------------

TRAIN = ["train", "--model-type", "mfcc_lstm", "--keep-holdout-model", "--batch-size", "16"]
EPOCHS = "8"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "SER_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **extra,
    }


def _distribution(models: Path, name: str) -> tuple[dict, float]:
    meta = json.loads((models / f"{name}.json").read_text())
    return meta["training"]["distribution"], meta["evaluation"]["mean_accuracy"]


# Both runs in one process, so TensorFlow starts once: the mirrored command first, since the
# CPU can be split only before TensorFlow starts; the same command on one device after it.
TWO_RUNS = textwrap.dedent(
    """
    import sys
    from ser import cli
    models, corpus, epochs, *train = sys.argv[1:]
    common = ["--models-dir", models, *train, "--data", corpus, "--epochs", epochs]
    assert cli.main([*common, "--name", "two-devices", "--strategy", "mirrored",
                     "--cpu-devices", "2"]) == 0
    assert cli.main([*common, "--name", "one-device"]) == 0
    """
)


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_trains_as_well_as_one_device(
    corpus: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    done = subprocess.run(
        [sys.executable, "-c", TWO_RUNS, str(models), str(corpus), EPOCHS, *TRAIN],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mirrored: 2 replicas; global batch 32 (16 per replica), learning rate 0.002" in (
        done.stderr
    )
    two, two_accuracy = _distribution(models, "two-devices")
    one, one_accuracy = _distribution(models, "one-device")
    assert two == {
        "strategy": "mirrored",
        "replicas": 2,
        "per_replica_batch_size": 16,
        "global_batch_size": 32,
        "learning_rate": pytest.approx(2e-3),
    }
    assert (one["replicas"], one["global_batch_size"], one["learning_rate"]) == (1, 16, 1e-3)
    # 24 held-out clips of 4 emotions (chance 25%): equal within noise, and both learnt.
    assert min(one_accuracy, two_accuracy) >= 0.6, (one_accuracy, two_accuracy)
    assert abs(one_accuracy - two_accuracy) <= 0.25, (one_accuracy, two_accuracy)

    # The model saved from two devices lives on none: it loads and answers like any other.
    from ser.predict import Recognizer

    recognizer = Recognizer.load("two-devices", models)
    clip = next(corpus.glob("Actor_01/*.wav"))
    assert recognizer.recognise(clip).prediction.emotion in recognizer.labels


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multiworker_trains_across_two_processes_and_the_chief_saves(
    corpus: Path, tmp_path: Path
) -> None:
    models, backups = tmp_path / "models", tmp_path / "backups"
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    command = [
        sys.executable,
        "-m",
        "ser",
        "--models-dir",
        str(models),
        *TRAIN,
        "--data",
        str(corpus),
        "--epochs",
        "3",
        "--name",
        "two-workers",
        "--strategy",
        "multiworker",
        "--backup-dir",
        str(backups),  # one folder both workers see, as across machines a shared one
    ]
    workers = [
        subprocess.Popen(
            command,
            env=_env(tmp_path, TF_CONFIG=_tf_config(cluster, "worker", index)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    try:
        outputs = [worker.communicate(timeout=300) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-3000:]
        assert "multiworker: 2 replicas; global batch 32 (16 per replica)" in err
    assert "saved " in outputs[0][1]
    assert "worker 1 done; the chief saves the model" in outputs[1][1]
    assert sorted(p.name for p in models.iterdir()) == ["two-workers.json", "two-workers.keras"]
    spread, accuracy = _distribution(models, "two-workers")
    assert (spread["strategy"], spread["replicas"], spread["global_batch_size"]) == (
        "multiworker",
        2,
        32,
    )
    assert accuracy > 0.25  # above chance after 3 epochs
    assert not backups.exists()  # spent once the model was saved
