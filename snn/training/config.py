"""Training configuration: YAML files and ``key=value`` overrides -> typed, validated dataclasses.

A config is a YAML mapping with the sections below; every field has a default, so a file only
lists what it changes (``load_config(None)`` is the defaults, the MLP; ``python train.py`` with no
file reads ``configs/mnist_mlp.yaml``)::

    name: mnist_mlp
    model: {kind: mlp, hidden: [1000], dropout: 0.2}
    optim: {lr: 1.0e-3, schedule: onecycle}

Overrides on the command line use dotted keys and YAML values: ``optim.lr=5e-4``,
``model.hidden=[800,800]``, ``data.train_subset=null``.

Every value is checked before any work starts: an unknown key, a wrong type or an impossible
value raises :class:`ConfigError`, whose message names the key and what it accepts.

Example::

    >>> cfg = load_config(None, ["optim.lr=0.002", "train.epochs=3"])
    >>> cfg.optim.lr, cfg.train.epochs, cfg.model.kind
    (0.002, 3, 'mlp')
    >>> load_config(None, ["optim.lrr=1"])
    Traceback (most recent call last):
    ...
    snn.training.config.ConfigError: unknown config key 'optim.lrr' (did you mean 'optim.lr'?); \
the keys of 'optim' are: name, lr, weight_decay, betas, schedule, warmup, final_lr_ratio, grad_clip
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ConfigError",
    "Config",
    "DataConfig",
    "EncodingConfig",
    "NeuronConfig",
    "ModelConfig",
    "LossConfig",
    "OptimConfig",
    "TrainConfig",
    "LogConfig",
    "load_config",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "save_config",
]


class ConfigError(ValueError):
    """A config that cannot be used: the message names the key and the values it accepts."""


def _choices(*values: str, doc: str = "") -> Any:
    return field(default=values[0], metadata={"choices": values, "doc": doc})


@dataclass
class DataConfig:
    """Which dataset, where it lives, and how it is split and batched.

    ``mnist``: images; ``smnist``: the same images read pixel by pixel, 784 steps;
    ``psmnist``: the same with the pixels in a fixed order drawn from ``permutation_seed``;
    ``fashion_mnist``: images of clothing (torchvision); ``nmnist``: MNIST recorded by an event
    camera, 2x34x34; ``shd``: Spiking Heidelberg Digits, spoken digits as spikes of 700 channels,
    20 classes. The event datasets are read with tonic (``pip install 'snn[neuromorphic]'``)."""

    dataset: str = _choices("mnist", "smnist", "psmnist", "fashion_mnist", "nmnist", "shd")
    # holds MNIST/raw/ (FashionMNIST/raw/, NMNIST/, SHD/); relative to the current directory
    root: str = "data"
    download: bool = True  # let torchvision/tonic download when root holds no copy (internet)
    val_size: int = 5000  # held out of the 60k training images for model selection
    split_seed: int = 0  # which images form the validation split
    train_subset: int | None = None  # use only the first N training-split images (smoke runs)
    val_subset: int | None = None
    test_subset: int | None = None  # final report on N test images; --eval always uses all 10k
    batch_size: int = 128
    eval_batch_size: int = 1000
    permutation_seed: int = 0  # psmnist: the seed of its fixed pixel order
    # training only, image datasets (mnist, fashion_mnist): move each image by up to this many
    # pixels along each axis, at random (snn.training.augment.random_shift)
    shift: int = 0
    # nmnist, shd: keep each split's binned frames in <folder>/.snn-frames/ (snn.training.events)
    cache_frames: bool = True


@dataclass
class EncodingConfig:
    """How a dataset's samples become the network's input ``[T, B, ...]``
    (:mod:`snn.training.encoding`); each kind belongs to one family of datasets.

    Images (mnist, fashion_mnist), pixel intensities in [0, 1] to spikes ``[T, B, 1, 28, 28]``:
    ``poisson``: rate coding (:func:`snn.encode.poisson`), random, seeded per process.
    ``latency``: one spike per pixel, brighter ones earlier (:func:`snn.encode.latency`,
    linear); a deterministic function of the image, used where runs must match exactly across
    different numbers of processes (the distributed-training test).

    Pixel sequences (smnist, psmnist), always 784 steps (``num_steps`` is not used):
    ``current``: the intensity enters as an input current, ``[784, B, 1]``.
    ``crossings``: spikes where the intensity crosses one of ``levels`` thresholds evenly spaced
    in (0, 1), upward crossings and downward crossings on separate channels, ``[784, B,
    2 * levels]`` (threshold crossings of each level's indicator, :func:`snn.encode.delta`).

    Events (nmnist, shd), binned into ``num_steps`` frames of event counts when loaded (tonic's
    ``ToFrame``): ``time_bins``: equal spans of time, over each recording from its first event
    to its last, or of ``bin_ms`` each from t = 0; ``event_bins``: equal numbers of events."""

    kind: str = _choices("poisson", "latency", "current", "crossings", "time_bins", "event_bins")
    num_steps: int = 25
    gain: float = 1.0  # spike probability per step = clamp(gain * pixel, 0, 1)
    levels: int = 40  # crossings: thresholds per intensity
    bin_ms: float | None = None  # time_bins: width of a bin in ms from t = 0; null: span each


@dataclass
class NeuronConfig:
    """The neurons of the hidden layers: ``lif`` (:class:`snn.LIF`), ``cuba_lif`` (current-based,
    :class:`snn.CubaLIF`, a synaptic current decaying by ``alpha``) or ``alif`` (an adaptive
    threshold, :class:`snn.ALIF`: ``v_th + adapt * a``, ``a`` decaying by ``rho``)."""

    kind: str = _choices("lif", "cuba_lif", "alif")
    beta: float = 0.9
    threshold: float = 1.0
    surrogate: str = _choices(
        "atan", "fast_sigmoid", "sigmoid", "triangle", "rectangular", "straight_through"
    )
    reset: str = _choices("subtract", "zero")
    detach_reset: bool = False
    learn_beta: bool = False  # per-neuron beta = sigmoid(w), as in PLIF
    learn_threshold: bool = False
    alpha: float = 0.8  # cuba_lif: decay of the synaptic current per step
    rho: float = 0.95  # alif: decay of the adaptation per step
    adapt: float = 1.8  # alif: threshold increase per unit of adaptation
    learn_alpha: bool = False  # cuba_lif: per-neuron alpha, learned as beta is
    learn_rho: bool = False  # alif: per-neuron rho, learned as beta is
    learn_adapt: bool = False  # alif: per-neuron adapt, learned


@dataclass
class ModelConfig:
    """The network. ``mlp``: [Linear -> neuron -> dropout] per hidden width, then the readout.
    ``cnn``: [Conv3x3 -> MaxPool2 -> BatchNorm -> neuron] per channel count, then the MLP head.
    ``rsnn``: [Linear -> recurrent neuron (:class:`snn.Recurrent`) -> dropout] per hidden width,
    then the readout."""

    kind: str = _choices("mlp", "cnn", "rsnn")
    hidden: list[int] = field(default_factory=lambda: [1000])  # fully connected widths
    channels: list[int] = field(default_factory=lambda: [32, 64])  # cnn only
    dropout: float = 0.0  # one mask per sample, shared by all time steps
    neuron: NeuronConfig = field(default_factory=NeuronConfig)
    readout_beta: float = 0.9  # decay of the output layer (spiking or leaky integrator)


@dataclass
class LossConfig:
    """How the output layer is read and trained.

    * ``ce_membrane``: the output is a non-spiking leaky integrator (:class:`snn.LeakyIntegrator`);
      logits are its membrane potential reduced over time (``reduce``).
    * ``ce_rate``: a spiking LIF output layer; logits are its spike counts.
    * ``mse_count``: a spiking LIF output layer whose spike counts are pulled toward
      ``correct_rate * T`` for the true class and ``incorrect_rate * T`` for the others.
    """

    kind: str = _choices("ce_membrane", "ce_rate", "mse_count")
    reduce: str = _choices("mean", "max", "last")  # ce_membrane: membrane over time -> logits
    correct_rate: float = 0.8  # mse_count
    incorrect_rate: float = 0.2  # mse_count
    label_smoothing: float = 0.0  # ce_membrane, ce_rate


@dataclass
class OptimConfig:
    """Adam or AdamW, stepped once per batch under a cosine or one-cycle learning-rate schedule."""

    name: str = _choices("adamw", "adam")
    lr: float = 1e-3  # the peak learning rate, in (0, 10]
    weight_decay: float = 0.0  # decoupled for adamw, L2 for adam
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    schedule: str = _choices("cosine", "onecycle", "constant")
    warmup: float = 0.0  # fraction of all steps spent warming up (cosine, onecycle)
    final_lr_ratio: float = 0.01  # the last lr as a fraction of the peak (cosine, onecycle)
    grad_clip: float | None = None  # clip the global gradient norm to this value


@dataclass
class TrainConfig:
    """The training loop: epochs, checkpoint interval, CPU threads, mixed precision."""

    epochs: int = 10
    checkpoint_every: int = 200  # also write last.pt every N steps, so a killed run loses little
    threads: int | None = 2  # torch.set_num_threads on CPU; null leaves torch's default
    amp: bool = False  # bf16 autocast, CUDA only


@dataclass
class LogConfig:
    """What a run reports: progress bars, the metrics log, plots, TensorBoard."""

    progress: bool = True  # tqdm bars
    log_every: int = 50  # a metrics.jsonl record every N steps
    plots: bool = True  # PNG plots in the run folder at the end
    tensorboard: bool = False  # also write TensorBoard events (needs the tensorboard package)


@dataclass
class Config:
    """A whole run: one section per concern, as in the YAML file (see :func:`load_config`)."""

    name: str = "mnist_mlp"
    out_dir: str = "runs"  # each run gets out_dir/<name>-<timestamp>/
    seed: int = 0
    device: str = "auto"  # auto (cuda if available), cpu, cuda, cuda:N
    data: DataConfig = field(default_factory=DataConfig)
    encoding: EncodingConfig = field(default_factory=EncodingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)


# ---------------------------------------------------------------------------------------------
# value checks beyond the type: (predicate, what the key accepts)

_POSITIVE_INT = (lambda v: v >= 1, "an integer >= 1")
_MAX_LR = 10.0
_RANGES: dict[str, tuple[typing.Callable[[Any], bool], str]] = {
    "name": (lambda v: re.fullmatch(r"[A-Za-z0-9_.-]+", v) is not None, "letters, digits, _ . -"),
    "device": (
        lambda v: re.fullmatch(r"auto|cpu|cuda(:\d+)?", v) is not None,
        "auto, cpu, cuda or cuda:N",
    ),
    "data.val_size": (lambda v: 0 < v < 60000, "an integer in 1..59999"),
    "data.train_subset": _POSITIVE_INT,
    "data.val_subset": _POSITIVE_INT,
    "data.test_subset": (lambda v: 1 <= v <= 10000, "an integer in 1..10000"),
    "data.batch_size": _POSITIVE_INT,
    "data.eval_batch_size": _POSITIVE_INT,
    "data.shift": (lambda v: 0 <= v <= 8, "an integer in 0..8 (pixels; 1 or 2 is usual)"),
    "encoding.num_steps": _POSITIVE_INT,
    "encoding.gain": (lambda v: 0 < v < math.inf, "a finite number > 0"),
    "encoding.levels": (lambda v: 1 <= v <= 255, "an integer in 1..255"),
    "encoding.bin_ms": (lambda v: 0 < v < math.inf, "a finite number > 0, or null"),
    "model.hidden": (lambda v: len(v) >= 1 and min(v) >= 1, "a non-empty list of widths >= 1"),
    "model.channels": (lambda v: len(v) >= 1 and min(v) >= 1, "a non-empty list of counts >= 1"),
    "model.dropout": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "model.neuron.beta": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "model.neuron.threshold": (lambda v: 0 < v < math.inf, "a finite number > 0"),
    "model.neuron.alpha": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "model.neuron.rho": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "model.neuron.adapt": (lambda v: 0 <= v < math.inf, "a finite number >= 0"),
    "model.readout_beta": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "loss.correct_rate": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "loss.incorrect_rate": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "loss.label_smoothing": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    # Adam moves each weight by about lr per step whatever the gradient's scale: above 10 that
    # is a typo (a missing e-3), not a learning rate
    "optim.lr": (
        lambda v: 0 < v <= _MAX_LR,
        f"a finite number > 0 and <= {_MAX_LR:g} (the peak learning rate; 1e-4 to 1e-2 is usual)",
    ),
    "optim.weight_decay": (lambda v: 0 <= v < math.inf, "a finite number >= 0"),
    "optim.betas": (lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two numbers in [0, 1)"),
    "optim.warmup": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "optim.final_lr_ratio": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "optim.grad_clip": (lambda v: 0 < v < math.inf, "a finite number > 0, or null"),
    "train.epochs": _POSITIVE_INT,
    "train.checkpoint_every": _POSITIVE_INT,
    "train.threads": _POSITIVE_INT,
    "log.log_every": _POSITIVE_INT,
}


# which encodings each family of datasets takes (EncodingConfig), and the side of the images
DATASET_FAMILIES = {
    "images": ("mnist", "fashion_mnist"),
    "pixel sequences": ("smnist", "psmnist"),
    "events": ("nmnist", "shd"),
}
ENCODINGS = {
    "images": ("poisson", "latency"),
    "pixel sequences": ("current", "crossings"),
    "events": ("time_bins", "event_bins"),
}
IMAGE_SIDES = {"mnist": 28, "fashion_mnist": 28, "nmnist": 34}


def _check_whole(cfg: Config) -> None:
    """Checks that involve more than one key."""
    if cfg.loss.kind == "mse_count" and not cfg.loss.correct_rate > cfg.loss.incorrect_rate:
        raise ConfigError(
            f"loss.correct_rate={cfg.loss.correct_rate} must be larger than "
            f"loss.incorrect_rate={cfg.loss.incorrect_rate}, or the true class is not favoured"
        )
    dataset, kind = cfg.data.dataset, cfg.encoding.kind
    family = next(f for f, names in DATASET_FAMILIES.items() if dataset in names)
    if kind not in ENCODINGS[family]:
        raise ConfigError(
            f"encoding.kind={kind} does not apply to data.dataset={dataset} ({family}); "
            f"set encoding.kind to one of: {', '.join(ENCODINGS[family])}"
        )
    if cfg.data.shift and family != "images":
        raise ConfigError(
            f"data.shift={cfg.data.shift} moves images, but data.dataset={dataset} gives "
            f"{family}; set data.shift=0"
        )
    if cfg.encoding.bin_ms is not None and kind != "time_bins":
        raise ConfigError(
            f"encoding.bin_ms applies to encoding.kind=time_bins only, not {kind}; set it to null"
        )
    if cfg.model.kind == "cnn":
        if dataset not in IMAGE_SIDES:
            raise ConfigError(
                f"model.kind=cnn needs images; data.dataset={dataset} gives a vector per step: "
                "use model.kind=mlp or rsnn"
            )
        side = IMAGE_SIDES[dataset]
        for _ in cfg.model.channels:
            side //= 2
        if side < 1:
            raise ConfigError(
                f"model.channels={cfg.model.channels} has {len(cfg.model.channels)} conv blocks; "
                f"each halves the {IMAGE_SIDES[dataset]}x{IMAGE_SIDES[dataset]} image, so at most "
                f"{int(math.log2(IMAGE_SIDES[dataset]))} fit"
            )


# ---------------------------------------------------------------------------------------------
# typed conversion


_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(
            "null" if a is type(None) else _type_name(a) for a in typing.get_args(tp)
        )
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return {int: "int", float: "float", bool: "bool (true/false)", str: "string"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    """``value`` as type ``tp``, or a ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, key)
            except ConfigError:
                pass
        raise ConfigError(f"config key {key!r} must be {_type_name(tp)}, got {value!r}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} must be {_type_name(tp)}, got {value!r}")
        return [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # YAML 1.1 reads 1e-3 (no dot) as a string; accept it as the number it obviously is
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"config key {key!r} must be {_type_name(tp)}, got {value!r}")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "the config"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where!r} must be a mapping of keys to values, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for k in raw:
        if k not in fields:
            key = f"{prefix}{k}"
            close = difflib.get_close_matches(str(k), list(fields), n=1)
            hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
            raise ConfigError(
                f"unknown config key {key!r}{hint}; the keys of {where!r} are: " + ", ".join(fields)
            )
    values = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            values[name] = _build(tp, raw.get(name), f"{key}.")
            continue
        if name not in raw:
            continue  # the default
        value = _convert(raw[name], tp, key)
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            raise ConfigError(
                f"config key {key!r} got {value!r}; allowed values: {', '.join(choices)}"
            )
        check = _RANGES.get(key)
        if check is not None and value is not None and not check[0](value):
            raise ConfigError(f"config key {key!r} got {value!r}; it must be {check[1]}")
        values[name] = value
    return cls(**values)


def config_from_dict(raw: dict | None) -> Config:
    """Validate a nested dict (as read from YAML) into a :class:`Config`."""
    cfg = _build(Config, raw, "")
    _check_whole(cfg)
    return cfg


def config_to_dict(cfg: Config) -> dict:
    """The nested dict of plain values that :func:`config_from_dict` reads back."""
    return dataclasses.asdict(cfg)


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key=value`` strings (dotted keys, YAML values) to a nested dict, in place."""
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"override {item!r} is not of the form key=value (for example optim.lr=5e-4)"
            )
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({e})") from None
        node = raw
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            if node.get(part) is None:  # absent, or a section whose keys are all commented out
                node[part] = {}
            nxt = node[part]
            if not isinstance(nxt, dict):
                raise ConfigError(
                    f"override {item!r}: {'.'.join(parts[: i + 1])!r} is not a section"
                )
            node = nxt
        node[parts[-1]] = value
    return raw


def read_yaml(path: str | Path) -> dict:
    """The mapping in a YAML config file (empty for an empty file), not yet validated."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist (the configs are in configs/)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {e}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of keys, got {raw!r}")
    return raw


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read ``path`` (``None``: the defaults), apply ``key=value`` overrides, and validate."""
    raw = {} if path is None else read_yaml(path)
    return config_from_dict(apply_overrides(raw, list(overrides or [])))


def save_config(cfg: Config, path: str | Path) -> None:
    """Write ``cfg`` as YAML, every key spelled out (the run folder's ``config.yaml``)."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
