"""The models folder: ``NAME.keras`` + ``NAME.json`` pairs, saved atomically, loaded safely.

The JSON is the commit marker: a model is visible only once its JSON is in
place, and the JSON records the SHA-256 of its ``.keras`` file, so a torn or
swapped pair is reported as broken instead of silently mispredicting.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .audio import fills_band
from .errors import ModelError
from .familiarity import Familiarity
from .features import FeatureConfig, FeatureKind

if TYPE_CHECKING:
    import keras

    from . import runtime
    from .card import ModelCard

METADATA_FORMAT = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_MAX_MODEL_RATE_HZ = 192_000  # ser.audio's limit for recordings; a model needs no more

# The one schema of a model's JSON, checked when the folder is read, so that everything that
# shows or uses a model (listings, the app, predict) can trust it. A field's spec is its type,
# whether it is required, and for objects the spec of their fields (unknown fields are kept).
Spec = tuple[type | tuple[type, ...], bool, "dict[str, Spec] | None"]
_NUMBER = (int, float)
_FRACTION: Spec = (_NUMBER, False, None)
_POSITIVE: Spec = (int, True, None)
SCHEMA: dict[str, Spec] = {
    "labels": (list, True, None),  # distinct emotion names, at least two (checked below)
    "features": (
        dict,
        True,
        {
            "kind": (str, True, None),
            "sample_rate_hz": _POSITIVE,
            "n_mfcc": _POSITIVE,
            "n_mels": _POSITIVE,
            "n_fft": _POSITIVE,
            "hop_length": _POSITIVE,
            "trim_db": ((*_NUMBER, type(None)), False, None),
            "level_dbfs": ((*_NUMBER, type(None)), False, None),
            "band_limit_hz": ((int, type(None)), False, None),
        },
    ),
    "evaluation": (
        dict,
        False,
        {
            "protocol": (str, False, None),
            "mean_accuracy": _FRACTION,
            "mean_uar": _FRACTION,
            "folds": (list, False, None),
            "confusion": (list, False, None),
            "labels": (list, False, None),
        },
    ),
    "trained_on": (
        dict,
        False,
        {
            "corpora": (dict, False, None),
            "clips": (int, False, None),
            "speakers": (int, False, None),
            "emotions": (dict, False, None),
        },
    ),
    "training": (dict, False, None),
    "cross_corpus": (dict, False, None),
    "calibration": (
        dict,
        False,
        {"temperature": (_NUMBER, True, None), "fitted_on": (str, False, None)},
    ),
    "familiarity": (dict, False, None),  # checked by Familiarity.from_dict below
    "shipped": (bool, False, None),
    "sha256": (str, False, None),
    "command": (str, False, None),
    "model_type": (str, False, None),
    "title": (str, False, None),
    "created_utc": (str, False, None),
}


def _type_name(value: object) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "text",
        bool: "true or false",
        type(None): "null",
    }.get(type(value), "a number")


def _check_fields(data: object, spec: dict[str, Spec], where: str) -> None:
    """Raises ``ValueError`` naming the first field of ``data`` that does not fit ``spec``."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'the metadata'} must be an object, not {_type_name(data)}")
    for key, (types, required, fields) in spec.items():
        name = f"{where}.{key}" if where else key
        if key not in data:
            if required:
                raise ValueError(f"{name} is missing")
            continue
        value = data[key]
        if not _fits(value, types):
            raise ValueError(f"{name} must not be {_type_name(value)}")
        if fields is not None:
            _check_fields(value, fields, name)
        if spec[key] is _POSITIVE and value <= 0:  # the shared specs carry a range
            raise ValueError(f"{name} must be positive, not {value}")
        if spec[key] is _FRACTION and not 0 <= value <= 1:
            raise ValueError(f"{name} must be between 0 and 1, not {value}")


def _fits(value: object, types: type | tuple[type, ...]) -> bool:
    allowed = types if isinstance(types, tuple) else (types,)
    # bool is an int to Python, never to a person reading the file
    return isinstance(value, allowed) and (bool in allowed or not isinstance(value, bool))


def validate_metadata(metadata: object) -> dict[str, Any]:
    """``metadata`` if it fits ``SCHEMA``; else ``ValueError`` saying which field does not."""
    _check_fields(metadata, SCHEMA, "")
    assert isinstance(metadata, dict)
    labels = metadata["labels"]
    if len(labels) < 2 or not all(isinstance(label, str) and label for label in labels):
        raise ValueError("labels must be at least two emotion names")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be distinct: {', '.join(labels)}")
    features = metadata["features"]
    if features["kind"] not in {k.value for k in FeatureKind}:
        raise ValueError(f"features.kind '{features['kind']}' is not a known kind of features")
    if features["sample_rate_hz"] > _MAX_MODEL_RATE_HZ:
        raise ValueError(f"features.sample_rate_hz must be at most {_MAX_MODEL_RATE_HZ:,}")
    if (band_limit_hz := features.get("band_limit_hz")) is not None and band_limit_hz <= 0:
        raise ValueError(f"features.band_limit_hz must be positive, not {band_limit_hz}")
    FeatureConfig.from_dict(features)
    if "calibration" in metadata and not metadata["calibration"]["temperature"] > 0:
        raise ValueError("calibration.temperature must be positive")
    if "familiarity" in metadata:
        try:
            Familiarity.from_dict(metadata["familiarity"])
        except (KeyError, TypeError) as error:
            raise ValueError(f"familiarity is incomplete or mistyped: {error}") from None
    return metadata


def default_models_dir() -> Path:
    """``SER_MODELS_DIR`` if set, else the ``models/`` folder shipped with the project."""
    env = os.environ.get("SER_MODELS_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "models"


def validate_name(name: str) -> str:
    """A model name is a plain file stem: it can never leave the models folder."""
    if not _NAME_RE.fullmatch(name or ""):
        raise ModelError(
            f"'{name}' is not a valid model name: use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit."
        )
    return name


@dataclass(frozen=True)
class ModelInfo:
    """One entry of the models folder; ``problem`` says why it cannot be used.

    ``metadata`` is the JSON as read; ``card`` is the same, typed, for everything that shows
    or ranks models.
    """

    name: str
    keras_path: Path
    metadata: dict[str, Any]
    problem: str | None = None

    @functools.cached_property
    def card(self) -> ModelCard | None:
        """The typed metadata; None for metadata that could not be read at all."""
        from .card import ModelCard

        if not self.metadata:
            return None
        try:  # checked when the folder was read; metadata made by hand is taken as it is
            return ModelCard.from_dict(self.metadata, validate=False)
        except (TypeError, ValueError, AttributeError):
            return None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def labels(self) -> list[str]:
        return list(self.card.labels) if self.card else []

    @property
    def features(self) -> FeatureConfig:
        return FeatureConfig.from_dict(self.metadata["features"])

    @property
    def shipped(self) -> bool:
        return bool(self.card and self.card.shipped)

    @property
    def accuracy(self) -> float | None:
        return self.card.accuracy if self.card else None

    @property
    def uar(self) -> float | None:
        return self.card.uar if self.card else None

    def summary(self) -> str:
        """One line for pickers and listings."""
        if not self.ok or self.card is None:
            return f"{self.name}: BROKEN ({self.problem})"
        figure = (
            f"{self.accuracy:.1%} accuracy, {self.uar:.1%} UAR ({self.card.protocol})"
            if self.accuracy is not None and self.uar is not None
            else "not evaluated"
        )
        corpora = ", ".join(self.card.corpora) or "?"
        return f"{self.name}: {figure}; trained on {corpora}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_info(json_path: Path) -> ModelInfo:
    name = json_path.stem
    keras_path = json_path.with_suffix(".keras")
    try:
        document = json.loads(json_path.read_text(encoding="utf-8"))
    except RecursionError:
        return ModelInfo(name, keras_path, {}, "metadata unreadable: nested too deeply")
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError among them
        return ModelInfo(name, keras_path, {}, f"metadata unreadable: {error}")
    try:
        metadata = validate_metadata(document)
    except RecursionError:
        return ModelInfo(name, keras_path, {}, "metadata invalid: nested too deeply")
    except (ValueError, KeyError, TypeError) as error:
        return ModelInfo(name, keras_path, {}, f"metadata invalid: {error}")
    if not keras_path.is_file():
        return ModelInfo(name, keras_path, metadata, "model file missing")
    expected = metadata.get("sha256")
    if expected and _sha256(keras_path) != expected:
        return ModelInfo(name, keras_path, metadata, "model file does not match its metadata")
    return ModelInfo(name, keras_path, metadata)


def list_models(models_dir: Path | None = None) -> list[ModelInfo]:
    """Every model in the folder, usable or not, sorted by name."""
    folder = models_dir or default_models_dir()
    if not folder.is_dir():
        return []
    with contextlib.suppress(OSError):  # a read-only folder simply lists as it is
        _recover(folder)
    return [_read_info(p) for p in sorted(folder.glob("*.json")) if not p.name.startswith(".")]


DEFAULT_MIN_ACCURACY = 0.58  # RAVDESS 6-fold by actor: a default must stay at least this good


def worst_unseen_accuracy(info: ModelInfo) -> float | None:
    """The model's accuracy on the corpus it did worst on among those it never heard, if measured."""
    return info.card.worst_unseen_accuracy if info.card else None


def default_model(models: list[ModelInfo]) -> ModelInfo | None:
    """The shipped model that does best on its worst unseen corpus while it stays at least
    ``DEFAULT_MIN_ACCURACY`` on unseen speakers; failing that, the most accurate one.

    A user's voice and microphone are a corpus no model has heard: the worst such figure is
    the one to protect. Models are compared on the unseen corpora they were all scored on
    (a model held out on more corpora has more chances of a bad worst figure), or each on its
    own where they share none. A band-limited model comes after every full-band one: it is for
    the recordings that lack the band (``model_for_band``), whatever its figures.
    """
    usable = [m for m in models if m.ok]
    accurate = [m for m in usable if m.shipped and (m.accuracy or 0.0) >= DEFAULT_MIN_ACCURACY]
    common = _corpora_all_scored_on(accurate)

    def rank(m: ModelInfo) -> tuple[bool, bool, bool, float, float]:
        is_accurate = m in accurate
        worst = (_worst_on(m, common) if common else worst_unseen_accuracy(m)) or 0.0
        full_band = m.features.band_limit_hz is None
        return (m.shipped, full_band, is_accurate, worst if is_accurate else 0.0, m.accuracy or 0.0)

    ranked = sorted(usable, key=rank, reverse=True)
    return ranked[0] if ranked else None


def _held_out_figures(info: ModelInfo) -> dict[str, Any]:
    cross = info.card.cross_corpus if info.card else None
    return cross.held_out() if cross else {}


def _corpora_all_scored_on(models: list[ModelInfo]) -> set[str]:
    scored = [set(_held_out_figures(m)) for m in models]
    return set.intersection(*scored) if scored else set()


def _worst_on(info: ModelInfo, corpora: set[str]) -> float | None:
    figures = [_held_out_figures(info)[name].accuracy for name in corpora]
    known = [a for a in figures if a is not None]
    return min(known) if known else None


def model_for_band(
    models: Sequence[ModelInfo], *, band_hz: float, labels: Sequence[str]
) -> ModelInfo | None:
    """The best shipped model with these labels whose band a recording holding frequencies up
    to ``band_hz`` fills (``ser.audio.fills_band``).

    A model takes a band it learnt from but a recording lacks (nothing above 8 kHz in a 16 kHz
    file, nothing above 4 kHz in a phone call) for a cue: such a recording is better answered
    by a model that never heard that band.
    """
    fitting = [
        m
        for m in models
        if m.ok
        and m.shipped
        and m.labels == list(labels)
        and fills_band(band_hz, heard_band_hz=m.features.heard_band_hz)
    ]
    return default_model(fitting)


def find_model(name_or_path: str | None, models_dir: Path | None = None) -> ModelInfo:
    """A model by name in the models folder, by path to a ``.keras`` file, or the default."""
    if name_or_path is None:
        chosen = default_model(list_models(models_dir))
        if chosen is None:
            raise ModelError(f"No usable model in {models_dir or default_models_dir()}.")
        return chosen
    if name_or_path.endswith(".keras"):  # an explicit path typed by the user
        json_path = Path(name_or_path).with_suffix(".json")
        if not json_path.is_file():
            raise ModelError(f"{name_or_path}: no metadata file {json_path.name} beside it.")
        return _read_info(json_path)
    folder = models_dir or default_models_dir()
    json_path = folder / f"{validate_name(name_or_path)}.json"
    if not json_path.is_file():
        known = ", ".join(m.name for m in list_models(folder)) or "none"
        raise ModelError(f"No model named '{name_or_path}'. Installed: {known}.")
    return _read_info(json_path)


def load_keras(info: ModelInfo) -> keras.Model:
    """Load the network with ``safe_mode=True`` and check it agrees with its metadata."""
    if not info.ok:
        raise ModelError(f"Model '{info.name}' cannot be used: {info.problem}.")
    import keras

    from . import models as _models  # noqa: F401  registers any custom layers

    try:
        model = keras.saving.load_model(info.keras_path, safe_mode=True, compile=False)
    except Exception as error:  # keras raises many types for a damaged archive
        raise ModelError(f"Model '{info.name}' could not be loaded: {error}") from error
    _check_shapes(info, n_outputs=model.outputs[0].shape[-1], n_inputs=model.inputs[0].shape[-1])
    return model


def load_network(info: ModelInfo) -> runtime.NumpyModel | keras.Model:
    """The network for inference: numpy (``ser.runtime``) when it runs there, else Keras.

    Both read the same ``.keras`` file and give the same probabilities; the numpy one needs
    no TensorFlow, which takes seconds to import.
    """
    if not info.ok:
        raise ModelError(f"Model '{info.name}' cannot be used: {info.problem}.")
    from . import runtime

    try:
        network = runtime.load(info.keras_path)
    except Exception:  # a layer it does not run, or a damaged archive: Keras decides and words it
        return load_keras(info)
    _check_shapes(info, n_outputs=network.n_outputs, n_inputs=network.input_shape[-1])
    return network


def _check_shapes(info: ModelInfo, *, n_outputs: int, n_inputs: int) -> None:
    if n_outputs != len(info.labels):
        raise ModelError(
            f"Model '{info.name}' has {n_outputs} outputs but its metadata lists "
            f"{len(info.labels)} labels; refusing to guess which is which."
        )
    if n_inputs != info.features.dim:
        raise ModelError(
            f"Model '{info.name}' expects {n_inputs} features per step "
            f"but its feature settings give {info.features.dim}."
        )


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a server under another user must read it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _backups(folder: Path, name: str) -> tuple[Path, Path]:
    """Where an overwritten pair waits, hidden, until its replacement is in place."""
    return folder / f".{name}.prev.keras", folder / f".{name}.prev.json"


@contextlib.contextmanager
def _save_lock(folder: Path, *, wait: bool = True) -> Iterator[bool]:
    """An exclusive lock on the models folder itself (no lock file to litter it); the
    system drops it when its holder dies. Yields whether it was acquired (always, when
    ``wait``). Without ``fcntl`` (Windows) there is no lock and no crash recovery, only
    the atomic JSON commit.
    """
    try:
        import fcntl
    except ImportError:
        yield wait
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)


def _recover(folder: Path) -> None:
    """Finish or undo overwrites that a killed process left halfway, and sweep its temporaries."""
    backups = list(folder.glob(".*.prev.json"))
    strays = [*folder.glob(".tmp-*.keras"), *folder.glob(".*.json.*.tmp")]
    if not backups and not strays:
        return
    with contextlib.suppress(OSError), _save_lock(folder, wait=False) as idle:
        if not idle:  # a save is under way right now: not a crash
            return
        for backup_json in backups:
            _restore_or_drop(folder, backup_json)
        for stray in strays:  # no save holds the lock, so their writer is dead
            stray.unlink(missing_ok=True)


def _restore_or_drop(folder: Path, backup_json: Path) -> None:
    name = backup_json.name[1 : -len(".prev.json")]
    backup_keras, _ = _backups(folder, name)
    if (folder / f"{name}.json").exists():  # the new pair made it: drop the old one
        backup_keras.unlink(missing_ok=True)
        backup_json.unlink()
    elif backup_keras.exists():  # killed midway: put the old pair back
        os.replace(backup_keras, folder / f"{name}.keras")
        os.replace(backup_json, folder / f"{name}.json")
        # rename() between two links of one file does nothing: drop the spare link
        backup_keras.unlink(missing_ok=True)


def update_metadata(info: ModelInfo, fields: dict[str, Any]) -> ModelInfo:
    """Add or replace top-level ``fields`` in a model's JSON (atomically), e.g. new figures."""
    json_path = info.keras_path.with_suffix(".json")
    metadata = {**json.loads(json_path.read_text(encoding="utf-8")), **fields}
    validate_metadata(metadata)
    with _save_lock(json_path.parent):
        _atomic_write_text(json_path, json.dumps(metadata, indent=2) + "\n")
    return _read_info(json_path)


def check_name_free(name: str, *, models_dir: Path | None = None, overwrite: bool = False) -> None:
    """Raises ``ModelError`` if saving under ``name`` would replace a model it must not: a
    shipped one ever, another one unless ``overwrite``."""
    json_path = (models_dir or default_models_dir()) / f"{validate_name(name)}.json"
    if not json_path.exists():
        return
    if _read_info(json_path).shipped:
        raise ModelError(f"'{name}' is a shipped model and is never overwritten.")
    if not overwrite:
        raise ModelError(f"A model named '{name}' already exists; choose another name.")


def save_model(
    model: keras.Model,
    metadata: dict[str, Any],
    *,
    name: str,
    models_dir: Path | None = None,
    overwrite: bool = False,
) -> ModelInfo:
    """Write ``NAME.keras`` then ``NAME.json``; a failure or kill midway leaves every
    model that was there before loadable, and no half-written one visible."""
    folder = models_dir or default_models_dir()
    json_path = folder / f"{validate_name(name)}.json"
    keras_path = json_path.with_suffix(".keras")
    check_name_free(
        name, models_dir=folder, overwrite=overwrite
    )  # before the work, and again below
    # Hidden until renamed; unique, so two saves at once never share a temporary file.
    tmp_keras = folder / f".tmp-{name}-{os.getpid()}-{secrets.token_hex(4)}.keras"
    backup_keras, backup_json = _backups(folder, name)
    renamed = False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with _save_lock(folder):
            # Under the lock: of two saves under one name at once, the second sees the first.
            check_name_free(name, models_dir=folder, overwrite=overwrite)
            model.save(tmp_keras)
            metadata = {
                **metadata,
                "format": METADATA_FORMAT,
                "name": name,
                "sha256": _sha256(tmp_keras),
            }
            if json_path.exists():  # overwriting: the old pair stays, hidden, until the new is in
                for source, backup in ((keras_path, backup_keras), (json_path, backup_json)):
                    backup.unlink(missing_ok=True)
                    try:
                        os.link(source, backup)  # instant, and no second copy on disk
                    except OSError:
                        shutil.copy2(source, backup)
            json_path.unlink(missing_ok=True)  # the old pair disappears before it is replaced
            os.replace(tmp_keras, keras_path)
            renamed = True
            _atomic_write_text(json_path, json.dumps(metadata, indent=2) + "\n")
    except OSError as error:
        if renamed:  # the metadata could not be written: leave no network without it
            with contextlib.suppress(OSError):
                keras_path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            _recover(folder)  # an overwritten model comes back
        raise ModelError(
            f"Could not save model '{name}' in {folder}: {error.strerror or error}"
        ) from error
    finally:
        with contextlib.suppress(OSError):  # e.g. the folder could not be made at all
            tmp_keras.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        _recover(folder)  # the new pair is in: drop the old one
    return _read_info(json_path)
