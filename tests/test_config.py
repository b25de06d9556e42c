"""Configs: YAML + key=value overrides -> typed dataclasses; every bad value named before work."""

from __future__ import annotations

from pathlib import Path

import pytest

from snn.training.config import (
    Config,
    ConfigError,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["mnist_mlp", "mnist_cnn", "smoke"])
def test_shipped_configs_validate(name):
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    assert cfg.name == name
    assert cfg.model.kind == ("cnn" if name == "mnist_cnn" else "mlp")


# the configs of the other datasets: (name, dataset, model kind, hidden neuron)
DATASET_CONFIGS = [
    ("smnist_alif", "smnist", "rsnn", "alif"),
    ("psmnist_alif", "psmnist", "rsnn", "alif"),
    ("smnist_smoke", "smnist", "rsnn", "alif"),
    ("fashion_mnist_cnn", "fashion_mnist", "cnn", "lif"),
    ("nmnist_cnn", "nmnist", "cnn", "lif"),
    ("shd_rsnn", "shd", "rsnn", "alif"),
]


@pytest.mark.parametrize("name, dataset, kind, neuron", DATASET_CONFIGS)
def test_dataset_configs_validate_and_name_their_reference(name, dataset, kind, neuron):
    path = ROOT / "configs" / f"{name}.yaml"
    cfg = load_config(path)
    assert (cfg.name, cfg.data.dataset, cfg.model.kind) == (name, dataset, kind)
    assert cfg.model.neuron.kind == neuron
    header = "".join(line for line in path.read_text().splitlines() if line.startswith("#"))
    if name != "smnist_smoke":
        assert "measured" in header  # says whether a figure was measured here
    if name not in ("smnist_smoke", "fashion_mnist_cnn"):
        assert "%" in header  # the published figure


def test_defaults_are_mnist_and_lif():
    cfg = Config()
    assert cfg.data.dataset == "mnist" and cfg.encoding.kind == "poisson"
    assert cfg.model.kind == "mlp" and cfg.model.neuron.kind == "lif"


def test_overrides_are_typed():
    cfg = load_config(
        ROOT / "configs" / "smoke.yaml",
        ["optim.lr=5e-4", "model.hidden=[64, 32]", "data.train_subset=null", "train.epochs=3"],
    )
    # YAML 1.1 reads "5e-4" as a string: a float field takes it as the number
    assert cfg.optim.lr == 5e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.model.hidden == [64, 32]
    assert cfg.data.train_subset is None
    assert cfg.train.epochs == 3
    assert cfg.data.batch_size == 64  # untouched values come from the file


def test_an_empty_section_takes_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("data:\n  # train_subset: 10  (commented out)\nseed: 3\n")
    cfg = load_config(tmp_path / "c.yaml", ["data.train_subset=100"])
    assert cfg.data.train_subset == 100 and cfg.seed == 3


def test_defaults_without_a_file():
    assert load_config(None) == Config()


def test_round_trip(tmp_path):
    cfg = load_config(None, ["model.kind=cnn", "loss.kind=mse_count", "optim.betas=[0.8, 0.9]"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    assert config_from_dict(config_to_dict(cfg)) == cfg


# (overrides, fragments the message must contain)
BAD = [
    (["optim.lrr=1"], ["'optim.lrr'", "did you mean 'optim.lr'", "weight_decay"]),
    (["colour=red"], ["unknown config key 'colour'", "model", "optim"]),
    (["model.hidden.width=3"], ["'model.hidden'", "not a section"]),
    (["train.epochs=abc"], ["'train.epochs'", "must be int"]),
    (["train.epochs=2.5"], ["'train.epochs'", "must be int"]),
    (["train.epochs=true"], ["'train.epochs'", "must be int"]),
    (["train.epochs=0"], ["'train.epochs'", "integer >= 1"]),
    (["optim.lr=-1"], ["'optim.lr'", "> 0"]),
    (["optim.lr=.nan"], ["'optim.lr'", "finite"]),
    (["optim.lr=20"], ["'optim.lr'", "got 20.0", "> 0 and <= 10"]),
    (["optim.lr=nan"], ["'optim.lr'", "must be float"]),
    (["optim.name=sgd"], ["'optim.name'", "'sgd'", "adamw, adam"]),
    (["optim.schedule=step"], ["'optim.schedule'", "cosine, onecycle, constant"]),
    (["loss.kind=hinge"], ["'loss.kind'", "ce_membrane, ce_rate, mse_count"]),
    (["model.kind=rnn"], ["'model.kind'", "mlp, cnn"]),
    (["model.neuron.surrogate=relu"], ["'model.neuron.surrogate'", "atan", "triangle"]),
    (["model.neuron.beta=1.5"], ["'model.neuron.beta'", "[0, 1]"]),
    (["model.dropout=1"], ["'model.dropout'", "[0, 1)"]),
    (["model.hidden=[]"], ["'model.hidden'", "non-empty"]),
    (["model.hidden=[10, x]"], ["'model.hidden[1]'", "int"]),
    (["model.hidden=7"], ["'model.hidden'", "a list of int"]),
    (["encoding.num_steps=0"], ["'encoding.num_steps'", ">= 1"]),
    (["data.val_size=60000"], ["'data.val_size'", "1..59999"]),
    (["data.test_subset=20000"], ["'data.test_subset'", "1..10000"]),
    (["device=gpu"], ["'device'", "auto, cpu, cuda or cuda:N"]),
    (["log.progress=maybe"], ["'log.progress'", "bool"]),
    (["optim.betas=[0.9]"], ["'optim.betas'", "two numbers"]),
    (["model.kind=cnn", "model.channels=[8,8,8,8,8]"], ["model.channels", "at most 4"]),
    (
        ["loss.kind=mse_count", "loss.correct_rate=0.1", "loss.incorrect_rate=0.5"],
        ["loss.correct_rate", "loss.incorrect_rate"],
    ),
    (["epochs"], ["not of the form key=value"]),
    (["optim=3"], ["'optim'", "mapping"]),
]


@pytest.mark.parametrize("overrides,fragments", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_values_name_the_key_and_the_allowed_values(overrides, fragments):
    with pytest.raises(ConfigError) as info:
        load_config(ROOT / "configs" / "smoke.yaml", overrides)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("model: {kind: mlp\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "broken.yaml")
    (tmp_path / "nested.yaml").write_text("model:\n  neuron:\n    betaa: 0.5\n")
    with pytest.raises(ConfigError, match=r"'model\.neuron\.betaa'.*'model\.neuron\.beta'"):
        load_config(tmp_path / "nested.yaml")


@pytest.mark.parametrize("warmup", [0.0, 0.02, 0.3])
@pytest.mark.parametrize("total_steps", [1, 2, 3, 50])
def test_onecycle_runs_for_any_warmup_and_length(warmup, total_steps):
    """OneCycleLR divides by each phase's length; a warmup of exactly one step (0.02 of 50
    steps) or of none used to raise ZeroDivisionError. The schedule starts at lr / 10
    (div_factor) and, given enough steps, peaks at lr."""
    import torch

    from snn.training.optim import make_optimizer, make_scheduler

    cfg = load_config(None, ["optim.schedule=onecycle", f"optim.warmup={warmup}", "optim.lr=0.01"])
    opt = make_optimizer(cfg, torch.nn.Linear(2, 2))
    sched = make_scheduler(cfg, opt, total_steps=total_steps)
    lrs = []
    for _ in range(total_steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    if total_steps > 1:  # (one step is the whole cycle: it ends at the final lr at once)
        assert lrs[0] == pytest.approx(0.001)
    if total_steps >= 50:
        assert max(lrs) == pytest.approx(0.01, rel=1e-3)
