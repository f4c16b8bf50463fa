"""Optimizers that update parameters from their `.grad`; learning-rate schedules in `lr_scheduler`.

>>> opt = rg.optim.Adam(model.parameters(), lr=1e-3)
>>> sched = rg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
>>> for x, y in loader:
...     opt.zero_grad()
...     loss_fn(model(x), y).backward()
...     opt.step()
...     sched.step()
"""
from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "lr_scheduler"]
