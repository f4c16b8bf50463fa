"""Training on top of `nn`, `optim` and `data`: a Keras-style `fit` over PyTorch objects.

>>> from retrograd.train import fit, evaluate, EarlyStopping, ModelCheckpoint
>>> history = fit(model, nn.CrossEntropyLoss(), opt, train_set, epochs=20, val_data=val_set,
...               callbacks=[EarlyStopping(patience=3), ModelCheckpoint("best.safetensors")])
>>> evaluate(model, test_set, loss_fn=nn.CrossEntropyLoss())
{'loss': 0.09, 'accuracy': 0.97}
>>> history.plot("curves.png")
"""
from . import metrics
from .callbacks import (Callback, CSVLogger, EarlyStopping, GradientClipping, LambdaCallback,
                        LRSchedulerCallback, ModelCheckpoint)
from .history import History
from .loop import TrainState, evaluate, fit, predict
from .restart import RestartResult, restarts

__all__ = [
    "fit", "evaluate", "predict", "restarts", "RestartResult", "History", "TrainState",
    "Callback", "EarlyStopping", "ModelCheckpoint", "LRSchedulerCallback", "CSVLogger",
    "GradientClipping", "LambdaCallback", "metrics",
]
