"""Inference without TensorFlow, for models built only of stock layers it knows: numpy.

TensorFlow takes seconds of CPU to import, and on a small server that delays the first page
and the first answer. The statistics models (the default among them) are graphs of stock
Keras layers whose inference is a handful of numpy operations, so ``load`` reads the same
``.keras`` archive (its ``config.json`` and ``model.weights.h5``) and runs that graph here.
Nothing in the archive is executed: a layer or option this module does not know raises
``UnsupportedModel``, and the caller loads the model with Keras (``safe_mode=True``) instead.
Tests check that both give the same probabilities for every shipped model it runs.

The path a reader can follow: ``load`` -> ``_graph`` (one ``_Node`` per layer, in the
config's order, each with its weights) -> ``NumpyModel.__call__`` evaluates them in turn.
"""

from __future__ import annotations

import functools
import io
import json
import re
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError

Array = np.ndarray
_EPSILON = 1e-7  # keras.backend.epsilon(), the floor of Normalization's standard deviation


class UnsupportedModel(ModelError):
    """The model uses a layer or option this runtime does not run; load it with Keras."""


@dataclass(frozen=True)
class _Node:
    name: str
    inputs: tuple[str, ...]
    as_list: bool  # the layer takes its inputs as one list (Add, Concatenate, ...)
    apply: Callable[..., Array]


@dataclass(frozen=True)
class NumpyModel:
    """A Keras functional model's inference, in numpy: call it on a batch, get its output."""

    nodes: tuple[_Node, ...]
    input_name: str
    output_name: str
    input_shape: tuple[int | None, ...]  # without the batch axis

    def __call__(self, batch: Array) -> Array:
        values = {self.input_name: np.asarray(batch, dtype=np.float32)}
        for node in self.nodes:
            args = [values[name] for name in node.inputs]
            values[node.name] = node.apply(args) if node.as_list else node.apply(*args)
        return values[self.output_name]

    @functools.cached_property
    def n_outputs(self) -> int:
        """The output's width, from one call on a frame of zeros."""
        probe = np.zeros((1, *(1 if n is None else n for n in self.input_shape)), np.float32)
        return int(self(probe).shape[-1])


def load(path: Path) -> NumpyModel:
    """The model in the ``.keras`` archive at ``path``; ``UnsupportedModel`` if it cannot run here."""
    import h5py  # Keras's own dependency; light to import, unlike TensorFlow

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            weights_file = io.BytesIO(archive.read("model.weights.h5"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ModelError(f"{path.name} is not a readable .keras archive: {error}") from error
    try:
        weights = h5py.File(weights_file, "r")
    except OSError as error:
        raise ModelError(f"{path.name} holds no readable weights: {error}") from error
    with weights:
        return _model(config, weights.get("layers"))


# --- reading the graph ---------------------------------------------------------------------


def _model(config: dict[str, Any], weights: Any) -> NumpyModel:
    if config.get("class_name") != "Functional":
        raise UnsupportedModel(
            f"a {config.get('class_name')} model (only functional ones run here)"
        )
    body = config["config"]
    (input_name,) = _names(body["input_layers"])
    (output_name,) = _names(body["output_layers"])
    nodes, input_shape = [], None
    used: Counter[str] = Counter()
    for layer in body["layers"]:
        # Keras saves each layer's weights under its class name in snake case, numbered from
        # the second of a class on, in the order of the config's layers.
        key = _snake_case(layer["class_name"])
        path = key if not used[key] else f"{key}_{used[key]}"
        used[key] += 1
        group = weights.get(path) if weights is not None else None
        if layer["class_name"] == "InputLayer":
            input_shape = tuple(layer["config"]["batch_shape"][1:])
            continue
        nodes.append(_node(layer, group))
    if input_shape is None:
        raise UnsupportedModel("a model without an input layer")
    return NumpyModel(tuple(nodes), input_name, output_name, input_shape)


def _names(layers: list[Any]) -> list[str]:
    """Layer names from a config's ``input_layers``/``output_layers`` (one entry or a list)."""
    entries = [layers] if layers and isinstance(layers[0], str) else layers
    if any(entry[2] != 0 for entry in entries):
        raise UnsupportedModel("a layer with several outputs")
    # Every layer here is called once (``_node``), so the node index names that one call.
    return [entry[0] for entry in entries]


def _snake_case(name: str) -> str:
    """As ``keras.src.utils.naming.to_snake_case``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _node(layer: dict[str, Any], weights: Any) -> _Node:
    inbound = layer.get("inbound_nodes") or []
    if len(inbound) != 1 or len(inbound[0]["args"]) != 1:
        raise UnsupportedModel(f"layer {layer['name']} is not called exactly once on one input")
    arg = inbound[0]["args"][0]
    as_list = isinstance(arg, list)
    tensors = arg if as_list else [arg]
    inputs = tuple(_names([t["config"]["keras_history"] for t in tensors]))
    return _Node(layer["name"], inputs, as_list, _operation(layer, weights))


def _variables(weights: Any) -> list[Array]:
    if weights is None or "vars" not in weights:
        return []
    group = weights["vars"]
    return [np.asarray(group[str(i)], dtype=np.float32) for i in range(len(group))]


# --- the layers ----------------------------------------------------------------------------

_IDENTITY_AT_INFERENCE = {"Dropout", "GaussianNoise", "GaussianDropout", "SpatialDropout1D"}
_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "softmax": lambda x: _softmax(x),
}


def _softmax(x: Array) -> Array:
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _operation(layer: dict[str, Any], weights: Any) -> Callable[..., Array]:
    kind, config = layer["class_name"], layer["config"]
    if kind == "Functional":
        return _model(layer, weights.get("layers") if weights is not None else None)
    if kind in _IDENTITY_AT_INFERENCE:
        return lambda x: x
    builder = _BUILDERS.get(kind)
    if builder is None:
        raise UnsupportedModel(f"layer {layer['name']} ({kind})")
    return builder(config, _variables(weights))


def _activation(name: str) -> Callable[[Array], Array]:
    if name not in _ACTIVATIONS:
        raise UnsupportedModel(f"activation {name}")
    return _ACTIVATIONS[name]


def _dense(config: dict[str, Any], variables: list[Array]) -> Callable[[Array], Array]:
    kernel, bias = variables[0], (variables[1] if config.get("use_bias", True) else None)
    activation = _activation(config.get("activation", "linear"))
    if config.get("quantization_config") or config.get("lora_rank"):
        raise UnsupportedModel("a quantised or LoRA dense layer")

    def dense(x: Array) -> Array:
        y = x @ kernel
        return activation(y + bias if bias is not None else y)

    return dense


def _normalization(config: dict[str, Any], variables: list[Array]) -> Callable[[Array], Array]:
    if config.get("invert") or config.get("axis") not in (-1, [-1]) or len(variables) < 2:
        raise UnsupportedModel("a Normalization layer other than adapted, on the last axis")
    mean, std = variables[0], np.maximum(np.sqrt(variables[1]), np.float32(_EPSILON))
    return lambda x: (x - mean) / std


def _layer_normalization(
    config: dict[str, Any], variables: list[Array]
) -> Callable[[Array], Array]:
    if config.get("center") or config.get("scale") or config.get("rms_scaling"):
        raise UnsupportedModel("a LayerNormalization with learnt scale or offset")
    axis, epsilon = tuple(config["axis"]), np.float32(config["epsilon"])

    def normalise(x: Array) -> Array:
        mean = x.mean(axis=axis, keepdims=True)
        variance = np.square(x - mean).mean(axis=axis, keepdims=True)
        return (x - mean) / np.sqrt(variance + epsilon)

    return normalise


def _global_pooling(reduce: Callable[..., Array]) -> Callable[..., Callable[[Array], Array]]:
    def build(config: dict[str, Any], _: list[Array]) -> Callable[[Array], Array]:
        if config.get("data_format", "channels_last") != "channels_last":
            raise UnsupportedModel("channels-first pooling")
        keepdims = bool(config.get("keepdims"))
        return lambda x: reduce(x, axis=1, keepdims=keepdims)

    return build


def _average_pooling_1d(config: dict[str, Any], _: list[Array]) -> Callable[[Array], Array]:
    """Stride 1; with "same" padding each output averages the frames its window covers (the
    padding is not counted), as TensorFlow's average pooling does."""
    (size,) = config["pool_size"]
    if tuple(config.get("strides") or [1]) != (1,) or config.get("padding") not in (
        "same",
        "valid",
    ):
        raise UnsupportedModel("average pooling other than stride 1")
    same = config["padding"] == "same"
    before, after = ((size - 1) // 2, size // 2) if same else (0, 0)

    def pool(x: Array) -> Array:
        padded = np.pad(x, ((0, 0), (before, after), (0, 0)))
        ones = np.pad(np.ones(x.shape[1], dtype=np.float32), (before, after))
        total = np.concatenate([np.zeros_like(padded[:, :1]), padded.cumsum(axis=1)], axis=1)
        count = np.concatenate([[0.0], ones.cumsum()])
        sums = total[:, size:] - total[:, :-size]
        counts = (count[size:] - count[:-size]).astype(np.float32)
        return (sums / counts[np.newaxis, :, np.newaxis]).astype(np.float32)

    return pool


def _cropping_1d(config: dict[str, Any], _: list[Array]) -> Callable[[Array], Array]:
    start, end = config["cropping"]
    return lambda x: x[:, start : x.shape[1] - end]


def _rescaling(config: dict[str, Any], _: list[Array]) -> Callable[[Array], Array]:
    scale, offset = config["scale"], config["offset"]
    if not all(isinstance(v, int | float) for v in (scale, offset)):
        raise UnsupportedModel("rescaling by a tensor")
    scale, offset = np.float32(scale), np.float32(offset)
    return lambda x: x * scale + offset


def _merge(
    combine: Callable[[list[Array]], Array],
) -> Callable[..., Callable[[list[Array]], Array]]:
    return lambda _config, _variables: combine


_BUILDERS: dict[str, Callable[[dict[str, Any], list[Array]], Callable[..., Array]]] = {
    "Dense": _dense,
    "Activation": lambda config, _: _activation(config["activation"]),
    "Normalization": _normalization,
    "LayerNormalization": _layer_normalization,
    "GlobalAveragePooling1D": _global_pooling(np.mean),
    "GlobalMaxPooling1D": _global_pooling(np.max),
    "AveragePooling1D": _average_pooling_1d,
    "UpSampling1D": lambda config, _: lambda x: np.repeat(x, config["size"], axis=1),
    "Cropping1D": _cropping_1d,
    "Reshape": lambda config, _: lambda x: x.reshape((len(x), *config["target_shape"])),
    "Flatten": lambda config, _: lambda x: x.reshape((len(x), -1)),
    "Rescaling": _rescaling,
    "Add": _merge(lambda xs: functools.reduce(np.add, xs)),
    "Subtract": _merge(lambda xs: xs[0] - xs[1]),
    "Multiply": _merge(lambda xs: functools.reduce(np.multiply, xs)),
    "Average": _merge(lambda xs: functools.reduce(np.add, xs) / np.float32(len(xs))),
    "Concatenate": lambda config, _: lambda xs: np.concatenate(xs, axis=config.get("axis", -1)),
}
