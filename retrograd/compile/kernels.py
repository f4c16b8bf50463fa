"""Numba loops for the lowerings that are not array expressions (imported only with Numba).

Fused cross-entropy over class-index targets, as ops/loss.py's CrossEntropyIndices computes it
without label smoothing or class weights: row by row, the log-softmax at the target from the
shifted exponentials, whose row sums backward reuses. Targets equal to `ignore_index` count for
nothing; any other target outside [0, C) raises IndexError, as eager does.

All compile with NumPy's error model, as the fused function does (numba_backend._jit).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(error_model="numpy")
def cross_entropy_forward(x, target, ignore_index, mean):
    """(loss, e, s, count): e = exp(x - row max), s its row sums, count the targets not ignored."""
    n, c = x.shape
    e = np.empty_like(x)
    s = np.empty(n, x.dtype)
    total = x.dtype.type(0)
    count = 0
    for i in range(n):
        t = target[i]
        if t == ignore_index:
            s[i] = 1
            continue
        if t < 0 or t >= c:
            raise IndexError("cross_entropy: a target class is out of range")
        top = x[i, 0]
        for j in range(1, c):
            top = max(top, x[i, j])
        row = x.dtype.type(0)
        for j in range(c):
            e[i, j] = np.exp(x[i, j] - top)
            row += e[i, j]
        s[i] = row
        total += np.log(row) - (x[i, t] - top)
        count += 1
    if mean:       # in the dtype of x, as NumPy divides a float32 sum by a Python int
        total = total / x.dtype.type(count) if count else x.dtype.type(np.nan)
    return total, e, s, count


@njit(error_model="numpy")
def cross_entropy_backward(e, s, target, ignore_index, g, count, mean):
    """d loss / dx: (softmax - onehot(target)) times the upstream g (over count for the mean)."""
    n, c = e.shape
    scale = g / e.dtype.type(count) if mean else g
    out = np.zeros_like(e)
    for i in range(n):
        t = target[i]
        if t == ignore_index:
            continue
        row = scale / s[i]
        for j in range(c):
            out[i, j] = e[i, j] * row
        out[i, t] -= scale
    return out


# -- optimizer updates, one pass over each parameter ---------------------------------------------
# The same float operations per element, in the same order, as optim/sgd.py and optim/adam.py do
# them array by array (so the same results), in one loop: Numba's whole-array expressions on 2-D
# parameters run 3-5x slower than NumPy's, a loop over the flat elements faster.

@njit(error_model="numpy")
def sgd_update(x, g, b, lr, momentum, damped_share, weight_decay, has_momentum, undamped,
               has_decay, nesterov, maximize):
    xf, gf, bf = x.reshape(-1), g.reshape(-1), b.reshape(-1)
    for i in range(xf.size):
        gi = -gf[i] if maximize else gf[i]
        if has_decay:
            gi = gi + weight_decay * xf[i]
        if has_momentum:
            bi = bf[i] * momentum
            bi = bi + gi if undamped else bi + damped_share * gi
            bf[i] = bi
            gi = gi + momentum * bi if nesterov else bi
        xf[i] = xf[i] - lr * gi


@njit(error_model="numpy")
def adam_update(x, g, m, v, v_max, one_minus_beta1, beta2, one_minus_beta2, eps_hat, alpha,
                decay_factor, weight_decay, has_decay, decoupled, amsgrad, maximize):
    xf, gf, mf, vf, wf = x.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), \
        v_max.reshape(-1)
    for i in range(xf.size):
        gi = -gf[i] if maximize else gf[i]
        xi = xf[i]
        if has_decay and decoupled:
            xi = xi * decay_factor
        elif has_decay:
            gi = gi + weight_decay * xi
        mi = mf[i] + (gi - mf[i]) * one_minus_beta1
        mf[i] = mi
        vi = vf[i] * beta2 + (gi * one_minus_beta2) * gi
        vf[i] = vi
        if amsgrad:
            vi = np.maximum(wf[i], vi)
            wf[i] = vi
        xf[i] = xi - (mi / (np.sqrt(vi) + eps_hat)) * alpha
