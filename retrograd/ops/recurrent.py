"""Fused recurrent layers: one op runs an RNN, LSTM or GRU layer over a whole sequence, one way.

Unrolled into tensor ops, an LSTM step is ~15 graph nodes, so a 1,000-step sequence would be 15,000
nodes, each paying Python overhead twice. Here the whole layer is one node. Forward projects the
input for every time step with one GEMM (W_ih x over all T*B columns), then loops over time on
NumPy arrays with one GEMM per step (W_hh h, all gates at once). Backward is backpropagation through
time written by hand: a reverse loop with one GEMM per step (W_hh^T dgates), then dW_ih, dW_hh and
dx as one GEMM each over the whole sequence. The LSTM folds the input projection into its step:
one GEMM of [W_hh | W_ih | b] with [h; x_t; 1] per step, and one GEMM for all its weight and bias
gradients. Once-differentiable: backward works on raw arrays.

Shapes are time-major: x (T, B, in), h0/c0 (B, H); gates in PyTorch's order and layout, W_ih
(G*H, in), W_hh (G*H, H), G = 1 (RNN), 3 (GRU: r, z, n) or 4 (LSTM: i, f, g, o). A 2-D x (B, in)
is a single step: what the RNNCell/LSTMCell/GRUCell layers use.
"""
from __future__ import annotations

import functools
import threading

import numpy as np

from ..autograd import Function

# sigmoid(a) = (1 + tanh(a / 2)) / 2: no overflow warning for large |a|, and one tanh call activates
# all of a step's gates. Pre-activations of sigmoid gates are halved (their weight rows scaled once
# per call), and tanh's result mapped back by t / 2 + 1/2 on the sigmoid gates' blocks.
_LSTM_SCALE = (0.5, 0.5, 1.0, 0.5)      # i, f, g, o

# Inside the time loop arrays are feature-major, (features, batch): a step's gates are one GEMM
# W_hh @ h of shape (G*H, B), each gate a contiguous (H, B) block, and for a small batch this GEMM
# runs 10-25% faster in OpenBLAS than h @ W_hh^T. Inputs and outputs stay (T, B, features).

# OpenBLAS's AVX-512 targets multiply small float32 matrices without packing them first ("direct"
# and small-matrix kernels, taken below about 100^3 multiply-adds). A step's GEMM is a few times
# that, so the LSTM's is run as row blocks under it: for H = 128, B = 32, in = 64 its
# (512 x 193) @ (193 x 32) went from 52 to 34-41 us (measured; its backward GEMM, W_hh^T read
# transposed, gained less than a contiguous copy of W_hh^T costs). Other targets ("Haswell" AVX2)
# have no such kernels and are ~7% slower split, so there the GEMM stays whole. Row blocks change
# no value's formula, but a different kernel may round differently: the choice is made once per
# process, not per call.
_SMALL_GEMM_MACS = 1_000_000
_SMALL_GEMM_CORES = {"SkylakeX", "Cooperlake", "SapphireRapids"}


@functools.cache
def _blas_multiplies_small_directly() -> bool:
    """Whether NumPy's BLAS is an OpenBLAS running one of its AVX-512 targets."""
    try:
        from threadpoolctl import threadpool_info
        libs = threadpool_info()
    except Exception:            # noqa: BLE001 - unknown BLAS: keep whole GEMMs
        return False
    return any(lib.get("internal_api") == "openblas" and "numpy" in lib.get("filepath", "")
               and lib.get("architecture") in _SMALL_GEMM_CORES for lib in libs)


def _gemm_blocks(rows: int, k: int, b: int, dtype) -> list[slice]:
    """Row blocks for a per-step (rows x k) @ (k x b) GEMM: one block unless smaller ones run on
    OpenBLAS's unpacked float32 kernels (see above)."""
    if dtype != np.float32 or rows * k * b <= _SMALL_GEMM_MACS \
            or not _blas_multiplies_small_directly():
        return [slice(0, rows)]
    size = -(-rows // -(-rows * k * b // _SMALL_GEMM_MACS))
    return [slice(start, start + size) for start in range(0, rows, size)]


# -- recycled work arrays -------------------------------------------------------------------------
# A training step of one LSTM layer touches ~15 MB of work arrays. Allocated fresh each call,
# glibc hands the freed megabytes back to the OS and every new page faults on first touch: ~3,800
# page faults and ~6 ms of system time per step (measured; the maths takes about as long). So work
# arrays come from a small per-thread pool and go back to it when the call (for forward's
# temporaries and backward's) or the graph node (for what forward saved) is done with them.
# Nothing handed to the caller ever comes from the pool.

_POOL_BYTES = 64 << 20          # kept per thread, least recently used dropped first
_local = threading.local()


class _Arena:
    """Arrays for one purpose, taken from the pool; all go back on release() or when it dies."""

    def __init__(self):
        self.arrays = []

    def empty(self, shape: tuple, dtype) -> np.ndarray:
        pool = _pool()
        free = pool.get((shape, dtype))
        if free:
            a = free.pop()
            _local.nbytes -= a.nbytes
        else:
            a = np.empty(shape, dtype)
        self.arrays.append(a)
        return a

    def release(self) -> None:
        arrays, self.arrays = self.arrays, []
        if not arrays or _local is None:       # nothing to give, or interpreter shutdown
            return
        pool = _pool()
        for a in arrays:
            key = (a.shape, a.dtype)
            free = pool.pop(key, [])
            free.append(a)
            pool[key] = free                     # most recently used last
            _local.nbytes += a.nbytes
        while _local.nbytes > _POOL_BYTES:
            for a in pool.pop(next(iter(pool))):
                _local.nbytes -= a.nbytes

    __del__ = release


def _pool() -> dict:
    if not hasattr(_local, "pool"):
        _local.pool, _local.nbytes = {}, 0
    return _local.pool


# -- pieces shared by the three layers ------------------------------------------------------------

def _sequence(x: np.ndarray, h0: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray,
              name: str) -> np.ndarray:
    """x as (T, B, in) (a single step if 2-D), after checking it against the weights and h0."""
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[0] == 0 or x.shape[2] != w_ih.shape[1]:
        raise ValueError(f"{name}: input of shape {x.shape} does not match weight_ih of shape "
                         f"{w_ih.shape} (expected (seq_len >= 1, batch, {w_ih.shape[1]}))")
    if h0.shape != (x.shape[1], w_hh.shape[1]):
        raise ValueError(f"{name}: initial state of shape {h0.shape}, expected "
                         f"{(x.shape[1], w_hh.shape[1])}")
    return x


def _bias(b_ih, b_hh):
    """b_ih + b_hh, added once to the input projection where the two act the same (RNN, LSTM)."""
    if b_ih is None or b_hh is None:
        return b_hh if b_ih is None else b_ih
    return b_ih + b_hh


def _project(tmp: _Arena, x2d: np.ndarray, w_ih: np.ndarray, bias, row_scale=None) -> np.ndarray:
    """W_ih x_t + bias for every step, one GEMM: (G*H, T*B), step t in columns t*B:(t+1)*B."""
    w = w_ih if row_scale is None else w_ih * row_scale[:, None]
    out = np.matmul(w, x2d.T, out=tmp.empty((w.shape[0], x2d.shape[0]), x2d.dtype))
    if bias is not None:
        out += (bias if row_scale is None else bias * row_scale)[:, None]
    return out


def _feature_major(tmp: _Arena, a: np.ndarray) -> np.ndarray:
    """(T, ..., B) per-step blocks -> (features, T*B): one matrix for the whole-sequence GEMMs."""
    T, B = a.shape[0], a.shape[-1]
    moved = np.moveaxis(a, 0, -2)
    out = tmp.empty(moved.shape, a.dtype)
    out[...] = moved
    return out.reshape(-1, T * B)


def _prev_states(tmp: _Arena, hs: np.ndarray, h0: np.ndarray, reverse: bool) -> np.ndarray:
    """The state each step read, (T, H, B): h0, then the outputs in the order they were made."""
    prev = tmp.empty(hs.shape, hs.dtype)
    if reverse:
        prev[:-1], prev[-1] = hs[1:], h0.T
    else:
        prev[1:], prev[0] = hs[:-1], h0.T
    return prev


def _time_major(hs: np.ndarray) -> np.ndarray:
    """(T, H, B) -> (T, B, H), a new contiguous array (handed to the caller: not from the pool)."""
    return np.ascontiguousarray(hs.transpose(0, 2, 1))


def _grad_in(tmp: _Arena, grad: np.ndarray, T: int, B: int, H: int) -> np.ndarray:
    """The incoming gradient of the outputs as (T, H, B) blocks."""
    out = tmp.empty((T, H, B), grad.dtype)
    out[...] = grad.reshape(-1, B, H)[:T].transpose(0, 2, 1)
    return out


def _weight_grads(ctx, tmp: _Arena, dgi: np.ndarray, dgh: np.ndarray) -> tuple:
    """dx, dW_ih, dW_hh, db_ih, db_hh from the gradients of the input and hidden pre-activations
    at every step (T, ..., B): one GEMM or one sum each over the whole sequence."""
    needs, k, h0 = ctx.needs_input_grad, ctx.k, ctx.h0
    gi = _feature_major(tmp, dgi)
    gh = gi if dgh is dgi else _feature_major(tmp, dgh)
    dx = (gi.T @ ctx.w_ih).reshape(ctx.x_shape) if needs[0] else None
    dw_ih = gi @ ctx.x2d if needs[k + 2] else None
    dw_hh = None
    if needs[k + 3]:
        # Each step read h0 first, then the output of the step before it: the outputs, time-major
        # (T*B, H) rows, are that matrix shifted by one step.
        B, H = h0.shape
        ys = ctx.ys.reshape(-1, H)
        n = ys.shape[0] - B
        if ctx.reverse:
            dw_hh = gh[:, :n] @ ys[B:] + gh[:, n:] @ h0
        else:
            dw_hh = gh[:, B:] @ ys[:n] + gh[:, :B] @ h0
    # sums over the sequence as GEMVs (faster than sum(axis=1)); one for both biases if they
    # receive the same gradient (RNN, LSTM)
    ones = np.ones(gi.shape[1], gi.dtype)
    db_ih = gi @ ones if needs[k + 4] else None
    db_hh = None
    if needs[k + 5]:
        db_hh = db_ih.copy() if gh is gi and db_ih is not None else gh @ ones
    return dx, dw_ih, dw_hh, db_ih, db_hh


def _save(ctx, x, x2d, h0, w_ih, w_hh, reverse, out, saved: _Arena, *extra) -> None:
    """Keep what backward reads: `saved` (the work arrays) goes back to the pool when the graph
    frees this node. `k` is 1 when the op has a c0 input (LSTM), shifting the weights' places."""
    ctx.save_for_backward(x, h0, *extra, w_ih, w_hh, out)   # in-place writes to these are caught
    ctx.x2d, ctx.x_shape, ctx.h0, ctx.w_ih, ctx.w_hh = x2d, x.shape, h0, w_ih, w_hh
    ctx.reverse, ctx.k, ctx.arena = reverse, len(extra), saved


def _steps(T: int, reverse: bool) -> range:
    return range(T - 1, -1, -1) if reverse else range(T)


class RNNLayer(Function):
    """h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh or relu.

    Returns every h_t, (T, B, H) (or (B, H) for a single 2-D step)."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False, nonlinearity="tanh"):
        seq = _sequence(x, h0, w_ih, w_hh, "RNN")
        T, B, n_in = seq.shape
        H = w_hh.shape[1]
        x2d = seq.reshape(T * B, n_in)
        tmp, saved = _Arena(), _Arena()
        xs = _project(tmp, x2d, w_ih, _bias(b_ih, b_hh)).reshape(H, T, B)
        hs = saved.empty((T, H, B), seq.dtype)
        h = h0.T
        for t in _steps(T, reverse):
            h = np.matmul(w_hh, h, out=hs[t])
            h += xs[:, t]
            if nonlinearity == "tanh":
                np.tanh(h, out=h)
            else:
                np.maximum(h, 0, out=h)
        out = _time_major(hs)
        out = out if x.ndim == 3 else out[0]
        tmp.release()
        if any(ctx.needs_input_grad):
            _save(ctx, x, x2d, h0, w_ih, w_hh, reverse, out, saved)
            ctx.hs, ctx.ys, ctx.nonlinearity = hs, out, nonlinearity
        return out

    @staticmethod
    def backward(ctx, grad):
        hs, w_t = ctx.hs, ctx.w_hh.T
        T, H, B = hs.shape
        tmp = _Arena()
        grad = _grad_in(tmp, grad, T, B, H)
        # derivative of the activation, for all steps at once: 1 - tanh^2, or the ReLU mask
        dpre = tmp.empty(hs.shape, hs.dtype)
        if ctx.nonlinearity == "tanh":
            np.multiply(hs, hs, out=dpre)
            np.subtract(1, dpre, out=dpre)
        else:
            np.greater(hs, 0, out=dpre)
        dh = np.zeros((H, B), hs.dtype)
        for t in _steps(T, not ctx.reverse):
            d = dpre[t]
            d *= grad[t] + dh
            dh = w_t @ d
        dx, dw_ih, dw_hh, db_ih, db_hh = _weight_grads(ctx, tmp, dpre, dpre)
        tmp.release()
        return dx, dh.T, dw_ih, dw_hh, db_ih, db_hh


class LSTMLayer(Function):
    """Hochreiter & Schmidhuber (1997), PyTorch's form: gates i, f, g, o from x W_ih^T + b_ih +
    h W_hh^T + b_hh; c_t = f c_{t-1} + i g, h_t = o tanh(c_t).

    Returns every h_t and the last c stacked, (T + 1, B, H): [h_1 .. h_T, c_T] in time order
    ((2, B, H) = [h, c] for a single 2-D step).

    Arrays are indexed by step s in the order the steps run (time T-1-s for `reverse`), so one
    loop serves both directions. Step s reads column block z[s] = [h; x; 1] (K = H + in + 1 rows,
    B columns, contiguous) and writes its h into z[s + 1]; its gates go to p[s] = [i, f, o, g,
    c_{s-1}] (the sigmoid gates first, so one scale-and-shift maps all three; c_{s-1} after g, so
    i*g and f*c_{s-1} are one multiply of p[s, :2] by p[s, 3:]), and its cell state to p[s+1, 4].
    """

    _ORDER = (0, 1, 3, 2)          # PyTorch's gate blocks (i, f, g, o) in the step's order i, f, o, g

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False):
        seq = _sequence(x, h0, w_ih, w_hh, "LSTM")
        if c0.shape != h0.shape:
            raise ValueError(f"LSTM: initial cell state of shape {c0.shape}, expected {h0.shape}")
        T, B, n_in = seq.shape
        H = w_hh.shape[1]
        dtype = seq.dtype
        k = H + n_in + 1
        tmp, saved = _Arena(), _Arena()
        # [W_hh | W_ih | b] in the step's gate order, sigmoid rows halved (see _LSTM_SCALE): one
        # GEMM with [h_{t-1}; x_t; 1] makes all four gates, without a separate input projection.
        w = tmp.empty((4, H, k), dtype)
        bias = _bias(b_ih, b_hh)
        for dst, src in zip(w, LSTMLayer._ORDER):
            rows, scale = slice(src * H, (src + 1) * H), _LSTM_SCALE[src]
            np.multiply(w_hh[rows], scale, out=dst[:, :H])
            np.multiply(w_ih[rows], scale, out=dst[:, H:-1])
            if bias is None:
                dst[:, -1] = 0
            else:
                np.multiply(bias[rows], scale, out=dst[:, -1])
        w = w.reshape(4 * H, k)
        z = saved.empty((T + 1, k, B), dtype)
        z[:T, H:-1] = (seq[::-1] if reverse else seq).transpose(0, 2, 1)
        z[:, -1] = 1
        z[0, :H] = h0.T
        p = saved.empty((T + 1, 5, H, B), dtype)
        p[0, 4] = c0.T
        tcs = saved.empty((T, H, B), dtype)     # tanh(c) of each step
        products = saved.empty((T, 2, H, B), dtype)     # i * g, f * c_{s-1}
        blocks = _gemm_blocks(4 * H, k, B, dtype)
        for s in range(T):
            a, zs = p[s], z[s]
            gates = a[:4].reshape(4 * H, B)
            for rows in blocks:
                np.matmul(w[rows], zs, out=gates[rows])
            np.tanh(gates, out=gates)
            sigmoid = a[:3]
            sigmoid *= 0.5
            sigmoid += 0.5
            ig_fc = np.multiply(a[:2], a[3:], out=products[s])
            c = np.add(ig_fc[0], ig_fc[1], out=p[s + 1, 4])
            np.tanh(c, out=tcs[s])
            np.multiply(a[2], tcs[s], out=z[s + 1, :H])
        out = np.empty((T + 1, B, H), dtype)     # h_1 .. h_T, then c_T
        hs = z[1:, :H]
        out[:T] = (hs[::-1] if reverse else hs).transpose(0, 2, 1)
        out[T] = p[T, 4].T
        tmp.release()
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x, h0, c0, w_ih, w_hh, out)   # in-place writes are caught
            ctx.x_shape, ctx.w_ih, ctx.w_hh, ctx.reverse = x.shape, w_ih, w_hh, reverse
            ctx.z, ctx.p, ctx.tcs, ctx.products, ctx.arena = z, p, tcs, products, saved
        return out

    @staticmethod
    def backward(ctx, grad):
        z, p, tcs = ctx.z, ctx.p, ctx.tcs
        T, H, B = tcs.shape
        dtype = tcs.dtype
        tmp = _Arena()
        g_out = _grad_in(tmp, grad, T, B, H)
        if ctx.reverse:
            g_out = g_out[::-1]
        act, hs, ig_fc = p[:T], z[1:, :H], ctx.products
        i, f, o, g = act[:, 0], act[:, 1], act[:, 2], act[:, 3]
        # Everything but the recurrence, for all steps at once: how dh and dc of a step reach its
        # pre-activations and its cell state, from what forward kept (h = o tanh c, i g, f c_{s-1}).
        from_h = tmp.empty((T, 2, H, B), dtype)       # d(o pre-act) and dc per unit dh
        np.subtract(1, o, out=from_h[:, 0])           # o (1 - o) tanh c = (1 - o) h
        from_h[:, 0] *= hs
        np.multiply(hs, tcs, out=from_h[:, 1])        # o (1 - tanh^2 c) = o - h tanh c
        np.subtract(o, from_h[:, 1], out=from_h[:, 1])
        from_c = tmp.empty((T, 3, H, B), dtype)       # d(i, f, g pre-acts) per unit dc
        np.subtract(1, act[:, :2], out=from_c[:, :2])  # i (1 - i) g = (1 - i) i g, and
        from_c[:, :2] *= ig_fc                        # f (1 - f) c_{s-1} = (1 - f) f c_{s-1}
        np.multiply(ig_fc[:, 0], g, out=from_c[:, 2])  # (1 - g^2) i = i - i g g
        np.subtract(i, from_c[:, 2], out=from_c[:, 2])
        # d[s] = gradients of step s's pre-activations in PyTorch's gate order i, f, g, o, then
        # scratch; the GEMM back to h reads d[s, :4] with W_hh^T as it is
        d = tmp.empty((T, 5, H, B), dtype)
        w_t = ctx.w_hh.T
        dh = np.zeros((H, B), dtype)
        dc = grad[T].T.copy()
        for s in range(T - 1, -1, -1):
            ds = d[s]
            np.add(g_out[s], dh, out=dh)
            np.multiply(dh, from_h[s], out=ds[3:])              # d(o pre-act), dc from dh
            dc += ds[4]
            np.multiply(dc, from_c[s], out=ds[:3])
            dc *= f[s]
            np.matmul(w_t, ds[:4].reshape(4 * H, B), out=dh)
        needs = ctx.needs_input_grad
        # the whole-sequence GEMMs read (4H, T*B) gradients: one copy (kept contiguous per step
        # above, as elementwise ops on (H, B) blocks strided by T*B take twice as long)
        gates = tmp.empty((4 * H, T, B), dtype)
        gates[...] = d[:, :4].reshape(T, 4 * H, B).transpose(1, 0, 2)
        gates = gates.reshape(4 * H, T * B)
        dx = None
        if needs[0]:
            dx = (gates.T @ ctx.w_ih).reshape(T, B, -1)
            dx = (dx[::-1].copy() if ctx.reverse else dx).reshape(ctx.x_shape)
        dw_ih = dw_hh = db_ih = db_hh = None
        if any(needs[3:]):
            # the forward GEMM's adjoint: [dW_hh | dW_ih | db] in one GEMM over the sequence, with
            # each step's [h; x; 1] as rows (T*B, K): copied, as OpenBLAS multiplies that layout
            # faster than z's blocks transposed by more than the copy costs
            inputs = tmp.empty((T, B, z.shape[1]), dtype)
            inputs[...] = z[:T].transpose(0, 2, 1)
            dw = gates @ inputs.reshape(T * B, -1)
            dw_hh = dw[:, :H].copy() if needs[4] else None
            dw_ih = dw[:, H:-1].copy() if needs[3] else None
            db_ih = dw[:, -1].copy() if needs[5] else None
            db_hh = dw[:, -1].copy() if needs[6] else None
        tmp.release()
        return dx, dh.T, dc.T, dw_ih, dw_hh, db_ih, db_hh


class GRULayer(Function):
    """Cho et al. (2014), PyTorch's form: r, z = sigmoid(x W_ir,z^T + b_ir,z + h W_hr,z^T + b_hr,z),
    n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn)), h_t = (1 - z) n + z h_{t-1}.

    Returns every h_t, (T, B, H) (or (B, H) for a single 2-D step)."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False):
        seq = _sequence(x, h0, w_ih, w_hh, "GRU")
        T, B, n_in = seq.shape
        H = w_hh.shape[1]
        dtype = seq.dtype
        x2d = seq.reshape(T * B, n_in)
        rows = np.repeat(np.array([0.5, 0.5, 1.0], dtype), H)   # r, z halved: see _LSTM_SCALE
        tmp, saved = _Arena(), _Arena()
        xs = _project(tmp, x2d, w_ih, b_ih, rows).reshape(3, H, T, B)
        bias = None if b_hh is None else b_hh.reshape(3, H, 1)
        gh = saved.empty((T, 3, H, B), dtype)      # W_hh h + b_hh, kept for backward
        rz = saved.empty((T, 2, H, B), dtype)
        n = saved.empty((T, H, B), dtype)
        hs = saved.empty((T, H, B), dtype)
        h = h0.T
        for t in _steps(T, reverse):
            g = gh[t]
            np.matmul(w_hh, h, out=g.reshape(3 * H, B))
            if bias is not None:
                g += bias
            x_t = xs[:, :, t]
            s = np.multiply(g[:2], 0.5, out=rz[t])
            s += x_t[:2]
            np.tanh(s, out=s)
            s *= 0.5
            s += 0.5
            n_t = np.multiply(s[0], g[2], out=n[t])
            n_t += x_t[2]
            np.tanh(n_t, out=n_t)
            h_new = np.subtract(h, n_t, out=hs[t])
            h_new *= s[1]
            h_new += n_t
            h = h_new
        out = _time_major(hs)
        out = out if x.ndim == 3 else out[0]
        tmp.release()
        if any(ctx.needs_input_grad):
            _save(ctx, x, x2d, h0, w_ih, w_hh, reverse, out, saved)
            ctx.gh_n, ctx.rz, ctx.n, ctx.hs, ctx.ys = gh[:, 2], rz, n, hs, out
        return out

    @staticmethod
    def backward(ctx, grad):
        rz, n, hs, w_t = ctx.rz, ctx.n, ctx.hs, ctx.w_hh.T
        T, H, B = hs.shape
        dtype = hs.dtype
        tmp = _Arena()
        grad = _grad_in(tmp, grad, T, B, H)
        r, z = rz[:, 0], rz[:, 1]
        h_prev = _prev_states(tmp, hs, ctx.h0, ctx.reverse)
        dn = tmp.empty((T, H, B), dtype)           # d(n pre-activation) / dh_t = (1-z)(1-n^2)
        np.multiply(n, n, out=dn)
        np.subtract(1, dn, out=dn)
        dn *= 1 - z
        # d(W_hh h + b_hh) / dh_t for r, z, n, all steps at once
        from_h = tmp.empty((T, 3, H, B), dtype)
        dr, dz, dhn = from_h[:, 0], from_h[:, 1], from_h[:, 2]
        np.subtract(1, r, out=dr)                  # dn (W_hn h + b_hn) r (1 - r)
        dr *= r
        dr *= ctx.gh_n
        dr *= dn
        np.subtract(1, z, out=dz)                  # (h_{t-1} - n) z (1 - z)
        dz *= z
        dz *= h_prev - n
        np.multiply(dn, r, out=dhn)                # dn r
        dgh = tmp.empty((T, 3, H, B), dtype)
        dhs = tmp.empty((T, H, B), dtype)          # dL/dh_t, everything that reaches h_t
        dh = np.zeros((H, B), dtype)
        for t in _steps(T, not ctx.reverse):
            dh_t = np.add(grad[t], dh, out=dhs[t])
            np.multiply(dh_t, from_h[t], out=dgh[t])
            dh = dh_t * z[t]
            dh += w_t @ dgh[t].reshape(3 * H, B)
        dgi = tmp.empty(dgh.shape, dtype)          # r and z: the same pre-activation gradient
        dgi[:, :2] = dgh[:, :2]
        np.multiply(dhs, dn, out=dgi[:, 2])
        dx, dw_ih, dw_hh, db_ih, db_hh = _weight_grads(ctx, tmp, dgi, dgh)
        tmp.release()
        return dx, dh.T, dw_ih, dw_hh, db_ih, db_hh


def rnn_layer(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False, nonlinearity="tanh"):
    """One direction of an Elman RNN layer over a time-major sequence x (T, B, in), from h0 (B, H).

    Returns (output (T, B, H), h_n (B, H)). `reverse` runs from the last step to the first (the
    backward direction of a bidirectional layer); output stays in time order.
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    out = RNNLayer.apply(x, h0, w_ih, w_hh, b_ih, b_hh, reverse=reverse,
                         nonlinearity=nonlinearity)
    return out, out[0 if reverse else x.shape[0] - 1]


def lstm_layer(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False):
    """One direction of an LSTM layer over x (T, B, in) from (h0, c0), each (B, H).

    Returns (output (T, B, H), h_n (B, H), c_n (B, H)).

    >>> out, h, c = lstm_layer(x, h0, c0, lstm.weight_ih_l0, lstm.weight_hh_l0)
    """
    T = x.shape[0]
    y = LSTMLayer.apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse=reverse)
    return y[:T], y[0 if reverse else T - 1], y[T]


def gru_layer(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False):
    """One direction of a GRU layer over x (T, B, in) from h0 (B, H): (output (T, B, H), h_n)."""
    out = GRULayer.apply(x, h0, w_ih, w_hh, b_ih, b_hh, reverse=reverse)
    return out, out[0 if reverse else x.shape[0] - 1]


def rnn_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """One step of an Elman RNN: x (B, in), h (B, H) -> h' (B, H)."""
    return RNNLayer.apply(x, h, w_ih, w_hh, b_ih, b_hh, nonlinearity=nonlinearity)


def lstm_cell(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
    """One LSTM step: x (B, in), h and c (B, H) -> (h', c')."""
    y = LSTMLayer.apply(x, h, c, w_ih, w_hh, b_ih, b_hh)
    return y[0], y[1]


def gru_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    """One GRU step: x (B, in), h (B, H) -> h' (B, H)."""
    return GRULayer.apply(x, h, w_ih, w_hh, b_ih, b_hh)
