"""Training beyond one device: tf.distribute's synchronous data parallelism, and resumable runs.

Three strategies:

- ``default``: one device, what every run did before this module.
- ``mirrored``: ``tf.distribute.MirroredStrategy`` over every local GPU, or, without GPUs, over
  the logical CPU devices ``split_cpu`` made (how it is tested on a machine without GPUs).
- ``multiworker``: ``tf.distribute.MultiWorkerMirroredStrategy``, one process per machine, the
  cluster and this process's place in it read from ``TF_CONFIG``. Every worker runs the same
  command on the same data; the chief (task ``chief``, else worker 0) saves the model.

Scaling follows the linear scaling rule: the batch size asked for (or the recipe's) is per
replica, the global batch is that times the replicas, and the learning rate is the recipe's
times the replicas, so a step still averages the same number of clips per replica.

``Backup`` writes a fit's weights and optimizer state after every epoch, so a run killed
midway (a worker lost, a machine restarted) picks up where it was when run again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import TrainingError

if TYPE_CHECKING:
    import keras
    import tensorflow as tf


class Strategy(str, Enum):
    DEFAULT = "default"  # one device
    MIRRORED = "mirrored"  # every local GPU, else every logical CPU device
    MULTIWORKER = "multiworker"  # one process per machine, configured from TF_CONFIG


@dataclass(frozen=True)
class Distribution:
    """How a run spreads its fits; not part of the model (the scaling it causes is saved)."""

    strategy: Strategy = Strategy.DEFAULT
    backup_dir: Path | None = None  # each fit backs up here after every epoch, to be resumed


@dataclass(frozen=True)
class Scaling:
    """The batch and learning rate one fit uses, from the per-replica ones and the replicas."""

    strategy: Strategy
    replicas: int
    per_replica_batch_size: int
    base_learning_rate: float

    @property
    def global_batch_size(self) -> int:
        return self.per_replica_batch_size * self.replicas

    @property
    def learning_rate(self) -> float:
        return self.base_learning_rate * self.replicas

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy.value,
            "replicas": self.replicas,
            "per_replica_batch_size": self.per_replica_batch_size,
            "global_batch_size": self.global_batch_size,
            "learning_rate": self.learning_rate,
        }


def scaling(
    strategy: Strategy, *, per_replica_batch_size: int, base_learning_rate: float
) -> Scaling:
    """The linear scaling rule for ``strategy`` on this process's devices or cluster."""
    return Scaling(strategy, replicas(strategy), per_replica_batch_size, base_learning_rate)


# --- the cluster ------------------------------------------------------------------------


@dataclass(frozen=True)
class Role:
    """This process's place in a cluster: one of ``workers`` processes, the chief or not."""

    task_type: str
    task_index: int
    workers: int
    chief: bool

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.task_index}"


ALONE = Role("worker", 0, 1, chief=True)


def role_from_tf_config(text: str | None) -> Role:
    """The role ``TF_CONFIG`` gives this process; ``TrainingError`` saying what is wrong."""
    if not text:
        raise TrainingError(
            "--strategy multiworker needs TF_CONFIG: the cluster and this process's task, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}.'
        )
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        task_type, index = str(task["type"]), int(task["index"])
        hosts = {kind: list(addresses) for kind, addresses in cluster.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise TrainingError(f"TF_CONFIG is not a cluster and a task: {error}") from None
    if not 0 <= index < len(hosts.get(task_type, [])):
        raise TrainingError(
            f"TF_CONFIG's task {task_type} {index} is not in its cluster "
            f"({', '.join(f'{len(v)} {k}' for k, v in hosts.items()) or 'empty'})."
        )
    workers = len(hosts.get("chief", [])) + len(hosts.get("worker", []))
    # tf.distribute's rule: the chief task if the cluster names one, else worker 0.
    chief = task_type == "chief" or ("chief" not in hosts and task_type == "worker" and index == 0)
    return Role(task_type, index, workers, chief)


def role(strategy: Strategy) -> Role:
    """This process's role: alone unless it is one worker of a multi-worker run."""
    if strategy is Strategy.MULTIWORKER:
        return role_from_tf_config(os.environ.get("TF_CONFIG"))
    return ALONE


# --- devices and strategies -------------------------------------------------------------


def split_cpu(devices: int) -> None:
    """Present the CPU as ``devices`` logical devices, for ``mirrored`` without GPUs.

    They share the same cores, so this tests distribution, not speed. It must come before
    TensorFlow first uses a device: call it first thing in the process.
    """
    import tensorflow as tf

    if devices < 1:
        raise TrainingError(f"--cpu-devices must be at least 1, not {devices}.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(devices)]
        )
    except RuntimeError:  # TensorFlow has started: the devices are what they are
        if len(tf.config.list_logical_devices("CPU")) != devices:
            raise TrainingError(
                "The CPU can be split into logical devices only before TensorFlow starts; "
                "split it first thing in the process."
            ) from None


@functools.cache
def tf_strategy(strategy: Strategy) -> tf.distribute.Strategy:
    """The tf.distribute strategy, made once per process (as MultiWorkerMirroredStrategy must)."""
    import tensorflow as tf

    if strategy is Strategy.MIRRORED:
        gpus = tf.config.list_logical_devices("GPU")
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if strategy is Strategy.MULTIWORKER:
        role(strategy)  # a clear message for a missing or wrong TF_CONFIG, before TF's own
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def replicas(strategy: Strategy) -> int:
    """How many copies of the model train at once: devices here, times workers."""
    if strategy is Strategy.DEFAULT:
        return 1  # without starting TensorFlow
    return int(tf_strategy(strategy).num_replicas_in_sync)


def scope(strategy: Strategy) -> contextlib.AbstractContextManager[Any]:
    """Where a model must be built to be distributed; nothing for the default strategy."""
    if strategy is Strategy.DEFAULT:
        return contextlib.nullcontext()
    return tf_strategy(strategy).scope()


# --- fitting ----------------------------------------------------------------------------


def fit_network(
    build: Callable[[], keras.Model],
    batches: Any,
    *,
    spread: Scaling,
    epochs: int,
    validation_data: Any,
    callbacks: list[keras.callbacks.Callback],
    backup: Backup | None,
) -> tuple[keras.Model, dict[str, list[Any]]]:
    """``build()`` a compiled network under ``spread``'s strategy and train it on ``batches``
    (global batches); resumed from ``backup`` when that holds epochs of this very fit.

    The network returned lives outside any strategy, so prediction and saving need no devices
    or workers; its history covers the epochs trained in this process.
    """
    strategy = spread.strategy
    with scope(strategy):
        model = build()
        if spread.replicas > 1:
            model.optimizer.learning_rate = spread.learning_rate
        if strategy is Strategy.MULTIWORKER:
            _fit_under_multiworker(model)
        done = backup.restore(model) if backup is not None else 0
        history = model.fit(
            batches,
            epochs=epochs,
            initial_epoch=done,
            validation_data=validation_data,
            # The backup first: an epoch is reported only once it is safe.
            callbacks=[*([backup.callback()] if backup is not None else []), *callbacks],
            verbose=0,
        )
    if strategy is not Strategy.DEFAULT:
        model = _local_copy(model)
    return model, dict(history.history)


def _fit_under_multiworker(model: keras.Model) -> None:
    """Work around Keras 3's ``fit`` under MultiWorkerMirroredStrategy (keras-team/keras#20585).

    It breaks in two places. Before the first step it reduces a whole (x, y, weight) batch
    across workers, which tf.distribute refuses for a nest: so the model forgets the strategy
    it was built under, and ``fit`` runs inside the strategy's scope, where Keras finds it
    again for everything else (its variables were made there). And it averages each step's
    scalar logs across workers along an axis 0 they lack: so each log leaves a step as a
    1-vector. The gradients are all-reduced by the optimizer, untouched by either.
    """
    import tensorflow as tf

    model._distribute_strategy = None
    model.optimizer.build(model.trainable_variables)  # in the strategy's scope, not a replica's

    def as_vectors(step: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
        return lambda data: {k: tf.reshape(v, [-1]) for k, v in step(data).items()}

    model.train_step = as_vectors(model.train_step)
    model.test_step = as_vectors(model.test_step)


def _local_copy(model: keras.Model) -> keras.Model:
    """``model`` rebuilt outside its strategy (a distributed model predicts each clip once per
    replica), through the ``.keras`` file it would be saved as: what prediction will load."""
    import keras

    from .models import forget_training_state

    with tempfile.TemporaryDirectory(prefix="ser-model-") as folder:
        path = Path(folder) / "model.keras"
        forget_training_state(model).save(path)
        return keras.saving.load_model(path, safe_mode=True)


# --- backups ----------------------------------------------------------------------------

STATE_FILE = "state.json"


@dataclass(frozen=True)
class Backup:
    """One fit's latest finished epoch: its weights and optimizer state, and how many epochs.

    Only the chief writes (the others save alongside it, to nowhere); every worker restores from the chief's folder (weights are the same
    on every worker), so all resume at the same epoch: across machines, give a folder they
    share. Each epoch's weights go to a new file and ``state.json`` is replaced last, so a kill
    at any moment leaves the previous epoch whole.
    """

    folder: Path
    writer: bool = True

    def epochs_done(self) -> int:
        state = self._state()
        return int(state["epoch"]) if state else 0

    def _state(self) -> dict[str, Any] | None:
        path = self.folder / STATE_FILE
        if not path.is_file():
            return None
        try:
            state = json.loads(path.read_text())
            if not (self.folder / state["weights"]).is_file() or int(state["epoch"]) < 0:
                raise ValueError("its weights are missing")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise TrainingError(
                f"The backup in {self.folder} cannot be read ({error}); delete it to start over."
            ) from None
        return state

    def restore(self, model: keras.Model) -> int:
        """Load the latest epoch into ``model`` (built and compiled); the epochs it had done."""
        state = self._state()
        if state is None:
            return 0
        model.optimizer.build(model.trainable_variables)  # so its state has somewhere to go
        try:
            model.load_weights(self.folder / state["weights"])
        except (OSError, ValueError) as error:
            raise TrainingError(
                f"The backup in {self.folder} does not fit this model ({error}); "
                "delete it to start over."
            ) from None
        return int(state["epoch"])

    def save(self, model: keras.Model, *, epochs_done: int) -> None:
        if not self.writer:
            # Reading a multi-worker model's variables is a collective op that every worker
            # must join at once (else the next step's all-reduce meets the chief's broadcast
            # and both abort): so a worker that does not write saves too, to a scratch folder.
            with tempfile.TemporaryDirectory(prefix="ser-backup-") as scratch:
                model.save_weights(Path(scratch) / "epoch.weights.h5")
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        weights = f"epoch-{epochs_done:05d}.weights.h5"
        model.save_weights(self.folder / weights, overwrite=True)
        previous = self._state()
        tmp = self.folder / f".{STATE_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"epoch": epochs_done, "weights": weights}))
        os.replace(tmp, self.folder / STATE_FILE)  # the commit point
        if previous and previous["weights"] != weights:
            (self.folder / previous["weights"]).unlink(missing_ok=True)

    def callback(self) -> keras.callbacks.Callback:
        import keras

        backup = self

        class SaveEachEpoch(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                # Stopped between batches (a stop asked for): the epoch was cut short, so it
                # is not backed up as done. (This callback runs first, before any callback
                # could stop training at an epoch's end.)
                if not self.model.stop_training:
                    backup.save(self.model, epochs_done=epoch + 1)

        return SaveEachEpoch()


def backup_for(distribution: Distribution, *, identity: str) -> Backup | None:
    """The backup of the fit that ``identity`` describes (its data, options and stage), in
    its own folder under ``distribution.backup_dir``; None without a backup folder."""
    if distribution.backup_dir is None:
        return None
    import hashlib

    key = hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:20]
    writer = role(distribution.strategy).chief
    return Backup(distribution.backup_dir / key, writer=writer)


def remove_backups(distribution: Distribution) -> None:
    """Once the run's model is saved, its backups are spent (the chief removes them)."""
    folder = distribution.backup_dir
    if folder is not None and role(distribution.strategy).chief:
        shutil.rmtree(folder, ignore_errors=True)


def backed_up_fits(distribution: Distribution) -> Iterator[Backup]:
    """The fits with epochs in the backup folder, for a run to say that it resumes."""
    folder = distribution.backup_dir
    if folder is None or not folder.is_dir():
        return
    for sub in sorted(folder.iterdir()):
        if (sub / STATE_FILE).is_file():
            yield Backup(sub, writer=False)
