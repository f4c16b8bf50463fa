"""The default training run: an MLP on scikit-learn's bundled 8x8 handwritten digits (no download).

80/20 stratified split by seed, ReLU MLP with He-initialised Linear layers, Adam, cross-entropy;
prints test accuracy and writes the learning curves (PNG) and the trained weights (safetensors).
The output directory also gets the run's config.json and a training checkpoint after every epoch,
so `retrograd train --resume DIR` carries an interrupted run on to the same final weights.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass

from .. import nn, optim, random
from ..data import DataLoader, datasets


@dataclass
class DigitsConfig:
    hidden: int = 256            # units per hidden layer
    depth: int = 2               # hidden layers
    optimizer: str = "adam"      # sgd | momentum | nesterov | adagrad | rmsprop | adam | adamw
    lr: float = 1e-3
    epochs: int = 40
    batch_size: int = 32
    dropout: float = 0.2         # after each hidden layer: the gap between train and test closes
    weight_decay: float = 0.0
    seed: int = 0
    out: str = "runs/digits"
    progress: bool = True
    resume: bool = False         # continue from out/checkpoint.safetensors
    compile: bool | str = False  # rg.compile'd steps (less Python per step); "numba": fused


CONFIG_FILE, CHECKPOINT_FILE = "config.json", "checkpoint.safetensors"


def resume_config(out: str, epochs: int | None = None, progress: bool = True) -> DigitsConfig:
    """The config of the run in `out` (its config.json), set to resume from its checkpoint;
    `epochs` extends (or shortens) the run."""
    path = os.path.join(out, CONFIG_FILE)
    if not os.path.isfile(path) or not os.path.isfile(os.path.join(out, CHECKPOINT_FILE)):
        raise FileNotFoundError(f"--resume {out}: no {CONFIG_FILE} and {CHECKPOINT_FILE} there; "
                                "resume a directory that `retrograd train --out DIR` wrote")
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    known = {k: v for k, v in saved.items() if k in DigitsConfig.__dataclass_fields__}
    config = DigitsConfig(**{**known, "out": out, "resume": True, "progress": progress})
    if epochs is not None:
        config.epochs = epochs
    return config


def build_model(hidden: int, depth: int, dropout: float = 0.0) -> nn.Module:
    layers, width = [], 64
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = hidden
    layers.append(nn.Linear(width, 10))
    model = nn.Sequential(*layers)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return model


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0) -> optim.Optimizer:
    name = name.lower()
    if name == "sgd":
        return optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "momentum":
        return optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "nesterov":
        return optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "adagrad":
        return optim.Adagrad(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=weight_decay or 1e-2)
    raise ValueError(f"unknown optimizer {name!r}: choose sgd, momentum, nesterov, adagrad, "
                     "rmsprop, adam or adamw")


def run(config: DigitsConfig) -> dict:
    """Train, evaluate on the held-out 20%, save curves and weights; returns the summary."""
    from ..distributed.launch import launched_rank
    from ..io import atomic_write_text, save
    from ..train import evaluate, fit

    writer = launched_rank() == 0   # under mpiexec every rank trains; rank 0 writes the files

    random.manual_seed(config.seed)
    train_set, test_set = datasets.digits(split="both", seed=config.seed)
    model = build_model(config.hidden, config.depth, config.dropout)
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.lr,
                               config.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    train_loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=512)

    os.makedirs(config.out, exist_ok=True)
    checkpoint = os.path.join(config.out, CHECKPOINT_FILE)
    if not config.resume and writer:
        atomic_write_text(os.path.join(config.out, CONFIG_FILE),
                          json.dumps({**asdict(config), "resume": False}, indent=1) + "\n")
    start = time.perf_counter()
    history = fit(model, loss_fn, optimizer, train_loader, epochs=config.epochs,
                  val_data=test_loader, metrics=("accuracy",), progress=config.progress,
                  checkpoint=checkpoint, resume_from=checkpoint if config.resume else None,
                  compile=config.compile)
    seconds = time.perf_counter() - start
    result = evaluate(model, test_loader, loss_fn=loss_fn, metrics=("accuracy",))

    os.makedirs(config.out, exist_ok=True)
    weights = os.path.join(config.out, "model.safetensors")
    if writer:
        save(model.state_dict(), weights, metadata={"config": json.dumps(asdict(config))})
    summary = {"test_accuracy": result["accuracy"], "test_loss": result["loss"],
               "train_seconds": seconds, "weights": weights, "curves": None,
               "parameters": sum(p.numel() for p in model.parameters())}
    try:
        curves = os.path.join(config.out, "curves.png")
        if writer:
            history.plot(curves)
        summary["curves"] = curves
    except ImportError as e:     # matplotlib is an optional extra
        summary["curves_error"] = str(e)
    return summary


def main(config: DigitsConfig) -> int:
    from ..distributed.launch import launched_rank, launched_world_size
    if launched_rank() != 0:  # under mpiexec: rank 0 alone reports
        run(config)
        return 0
    world = launched_world_size()
    if world > 1:
        print(f"data-parallel over {world} MPI processes: batch {config.batch_size} per process")
    print(f"digits: 8x8 images, 10 classes; MLP 64-{'-'.join([str(config.hidden)] * config.depth)}"
          f"-10, {config.optimizer} lr={config.lr}, {config.epochs} epochs, batch "
          f"{config.batch_size}, seed {config.seed}")
    s = run(config)
    print(f"test accuracy {s['test_accuracy']:.4f}  (loss {s['test_loss']:.4f}, "
          f"{s['parameters']:,} parameters, trained in {s['train_seconds']:.1f} s)")
    print(f"weights: {s['weights']}")
    print(f"curves:  {s['curves']}" if s["curves"] else f"curves not saved: {s['curves_error']}")
    return 0
