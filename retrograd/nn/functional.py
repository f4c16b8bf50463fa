"""`retrograd.nn.functional` (`F`): stateless forms of the layers, activations and losses.

Layers own parameters; these functions take them as arguments, so the same maths serves both.
"""
from __future__ import annotations

import numpy as np

from ..autograd import array_function
from ..ops import (elu, gelu, leaky_relu, linear, log_softmax, pad, relu, sigmoid, softmax,  # noqa
                   softplus, tanh)
from ..ops.arithmetic import Mul
from ..ops.attention import dropout_scale, scaled_dot_product_attention  # noqa: F401
from ..ops.conv import conv1d, conv2d, conv_transpose2d  # noqa: F401
from ..ops.embedding import embedding  # noqa: F401
from ..ops.scatter_gather import OneHot
from ..ops.loss import (binary_cross_entropy, binary_cross_entropy_with_logits,  # noqa: F401
                        cross_entropy, huber_loss, kl_div, l1_loss, mse_loss, nll_loss,
                        smooth_l1_loss)
from ..ops.norm import batch_norm_train, layer_norm  # noqa: F401
from ..ops.pool import (adaptive_avg_pool2d, avg_pool2d, interpolate, max_pool1d,  # noqa: F401
                        max_pool2d)
from ..tensor import Tensor


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 tensor of shape (*tensor.shape, num_classes) with a 1 at each class index; with
    num_classes=-1, one more than the largest index. No gradient. An op, so a compiled step
    replays it with each call's indices.

    >>> F.one_hot(rg.tensor([0, 2]), 3)          # [[1, 0, 0], [0, 0, 1]]
    """
    if not isinstance(tensor, Tensor):
        tensor = np.asarray(tensor)
    return OneHot.apply(tensor, num_classes=int(num_classes))


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout: zero with probability p, scale survivors by 1/(1-p); identity when not training."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0.0
    return Mul.apply(x, dropout_scale(x.shape, p, x.dtype))


@array_function   # outside the op: a compiled step replays the update
def _update_running_stats(running_mean: Tensor, running_var: Tensor, mean: np.ndarray,
                          var: np.ndarray, n: int, m: float) -> None:
    unbiased = var.reshape(-1) * (n / max(n - 1, 1))
    running_mean.data *= 1 - m
    running_mean.data += m * mean.reshape(-1)
    running_var.data *= 1 - m
    running_var.data += m * unbiased


@array_function   # read at each call of a compiled step: training moves the statistics
def _running_mean(running_mean: Tensor, shape: tuple) -> np.ndarray:
    return running_mean.data.reshape(shape)


@array_function
def _running_scale(running_var: Tensor, eps: float, shape: tuple, dtype) -> np.ndarray:
    return (1.0 / (running_var.data + eps) ** 0.5).reshape(shape).astype(dtype)


def batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float | None = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation over every axis but 1 (channels). In training, batch statistics normalise
    and the running statistics are updated in place (exponential average with `momentum`, or the
    cumulative average when momentum is None and the caller passes the factor)."""
    if training:
        out, mean, var = batch_norm_train(x, weight, bias, eps)
        if running_mean is not None:
            _update_running_stats(running_mean, running_var, mean, var,
                                  x.data.size // x.data.shape[1], momentum)
        return out
    if running_mean is None:
        raise ValueError("batch_norm: eval mode needs running statistics")
    shape = (1, -1) + (1,) * (x.ndim - 2)
    out = (x - _running_mean(running_mean, shape)) * _running_scale(running_var, eps, shape,
                                                                    x.dtype)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out
