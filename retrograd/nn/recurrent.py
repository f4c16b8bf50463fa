"""Recurrent layers with PyTorch's API: RNN, LSTM, GRU (stacked, bidirectional) and their cells.

Parameter names, shapes, gate order and initialisation are PyTorch's, so `load_state_dict` takes a
torch state dict: `weight_ih_l{k}` (G*H, in), `weight_hh_l{k}` (G*H, H), `bias_ih_l{k}`,
`bias_hh_l{k}`, with a `_reverse` suffix for the backward direction; G = 1 (RNN), 3 (GRU: r, z, n),
4 (LSTM: i, f, g, o). Each layer and direction runs as one fused op (`retrograd.ops.recurrent`):
the graph has a few nodes per layer whatever the sequence length, so backpropagation through 1,000
steps costs no recursion and no per-step graph.

Truncated backpropagation through time: carry the state between chunks, detached.

>>> lstm = nn.LSTM(8, 16, batch_first=True)
>>> state = None
>>> for chunk in chunks:                          # each (batch, 50, 8)
...     out, (h, c) = lstm(chunk, state)
...     loss_fn(out, target).backward()
...     state = (h.detach(), c.detach())          # without detach: "backward ... a second time"
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .. import dtypes
from ..creation import empty
from ..ops.index import Stack, cat
from ..ops.recurrent import gru_cell, gru_layer, lstm_cell, lstm_layer, rnn_cell, rnn_layer
from ..tensor import Tensor
from . import init
from .functional import dropout as _dropout
from .module import Module
from .parameter import Parameter

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _check_sizes(input_size: Any, hidden_size: Any) -> None:
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
        if value <= 0:
            raise ValueError(f"{name} must be greater than zero, got {value}")


def _check_dtype(layer: Module, x: Tensor, weight: Parameter) -> None:
    if x.dtype != weight.dtype:
        raise TypeError(f"{layer!r}: input dtype {dtypes.name(x.dtype)} does not match weight "
                         f"dtype {dtypes.name(weight.dtype)}; convert the input "
                         f"(x.to(rg.{dtypes.name(weight.dtype)})) or the model "
                         f"(model.to(rg.{dtypes.name(x.dtype)}))")


class RNNBase(Module):
    """The stacked, optionally bidirectional, recurrent layer behind RNN, LSTM and GRU.

    Input (seq_len, batch, input_size), or (batch, seq_len, input_size) with batch_first, or
    (seq_len, input_size) unbatched. Initial state h0 (num_layers * num_directions, batch,
    hidden_size) ((num_layers * num_directions, hidden_size) unbatched), zeros if not given; for
    LSTM a tuple (h0, c0). Output (seq_len, batch, num_directions * hidden_size) with the last
    layer's h_t at every step (both directions concatenated), and the final state of every layer
    and direction, shaped like h0: `(output, h_n)`, or `(output, (h_n, c_n))` for LSTM.
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, dtype=None):
        super().__init__()
        if mode not in _GATES:
            raise ValueError(f"unrecognised RNN mode {mode!r}; expected one of {list(_GATES)}")
        _check_sizes(input_size, hidden_size)
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) \
                or not 0 <= dropout <= 1:
            raise ValueError(f"dropout should be a number in [0, 1], the probability of an "
                             f"element being zeroed; got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"dropout option adds dropout after all but last recurrent layer, so "
                          f"non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}", stacklevel=3)
        for name, flag in (("bias", bias), ("batch_first", batch_first),
                           ("bidirectional", bidirectional)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} should be of type bool, got: {type(flag).__name__}")
        if proj_size:
            raise NotImplementedError("LSTM(proj_size=...) is not supported yet")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, 0
        directions = 2 if bidirectional else 1
        rows = _GATES[mode] * hidden_size
        self._flat_weights_names: list[str] = []
        for layer in range(num_layers):
            n_in = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = [("weight_ih", (rows, n_in)), ("weight_hh", (rows, hidden_size))]
                if bias:
                    shapes += [("bias_ih", (rows,)), ("bias_hh", (rows,))]
                for name, shape in shapes:
                    setattr(self, name + suffix, Parameter(empty(*shape, dtype=dtype)))
                    self._flat_weights_names.append(name + suffix)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as PyTorch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def flatten_parameters(self) -> None:
        """PyTorch's cuDNN memory-layout hint; nothing to do here (kept for compatibility)."""

    @property
    def all_weights(self) -> list[list[Parameter]]:
        """Parameters per layer and direction: [[w_ih, w_hh, b_ih, b_hh], ...] as PyTorch."""
        per = 4 if self.bias else 2
        params = [getattr(self, n) for n in self._flat_weights_names]
        return [params[i:i + per] for i in range(0, len(params), per)]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # -- forward -----------------------------------------------------------------------------------
    def _check_input(self, x: Any) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"{self!r}: expected a Tensor input, got {type(x).__name__}")
        if x.ndim not in (2, 3):
            layout = "(batch, seq_len" if self.batch_first else "(seq_len, batch"
            raise ValueError(f"{self!r}: expected a 3-D input {layout}, {self.input_size}) or a "
                             f"2-D unbatched input (seq_len, {self.input_size}), got shape "
                             f"{tuple(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{self!r}: expected input with last dimension (input_size) "
                             f"{self.input_size}, got {x.shape[-1]} (input shape "
                             f"{tuple(x.shape)})")
        if x.shape[-2 if x.ndim == 2 else (1 if self.batch_first else 0)] == 0:
            raise ValueError(f"{self!r}: the input sequence is empty (shape {tuple(x.shape)})")
        _check_dtype(self, x, self.weight_ih_l0)

    def _initial_state(self, state: Any, name: str, batched: bool, batch: int) -> Any:
        """The state per layer and direction: an indexable of (batch, hidden) tensors or arrays."""
        n = self.num_layers * (2 if self.bidirectional else 1)
        if state is None:
            zeros = np.zeros((batch, self.hidden_size), self.weight_ih_l0.dtype)
            return [zeros] * n
        expected = (n, batch, self.hidden_size) if batched else (n, self.hidden_size)
        if not isinstance(state, Tensor) or tuple(state.shape) != expected:
            got = tuple(state.shape) if isinstance(state, Tensor) else type(state).__name__
            what = ("(num_layers * num_directions, batch, hidden_size)" if batched
                    else "(num_layers * num_directions, hidden_size) for an unbatched input")
            raise ValueError(f"{self!r}: expected {name} of shape {expected} {what}, got {got}")
        _check_dtype(self, state, self.weight_ih_l0)
        return state if batched else state.unsqueeze(1)

    def forward(self, input: Tensor, hx: Any = None):
        self._check_input(input)
        batched = input.ndim == 3
        x = input
        if not batched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        batch = x.shape[1]
        lstm = self.mode == "LSTM"
        if lstm:
            if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
                raise ValueError(f"{self!r}: expected the initial state as a tuple (h0, c0), got "
                                 f"{type(hx).__name__}")
            h0, c0 = (None, None) if hx is None else hx
            h0 = self._initial_state(h0, "h0", batched, batch)
            c0 = self._initial_state(c0, "c0", batched, batch)
        else:
            h0 = self._initial_state(hx, "h0", batched, batch)
        directions = 2 if self.bidirectional else 1
        per = len(self._flat_weights_names) // (self.num_layers * directions)
        hs, cs = [], []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(directions):
                k = layer * directions + direction
                params = [getattr(self, n) for n in self._flat_weights_names[k * per:(k + 1) * per]]
                if per == 2:
                    params += [None, None]
                reverse = direction == 1
                if lstm:
                    out, h, c = lstm_layer(x, h0[k], c0[k], *params, reverse=reverse)
                    cs.append(c)
                elif self.mode == "GRU":
                    out, h = gru_layer(x, h0[k], *params, reverse=reverse)
                else:
                    out, h = rnn_layer(x, h0[k], *params, reverse=reverse,
                                       nonlinearity="tanh" if self.mode == "RNN_TANH" else "relu")
                outs.append(out)
                hs.append(h)
            x = outs[0] if directions == 1 else cat(outs, dim=2)
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                x = _dropout(x, self.dropout, True)
        h_n = Stack.apply(*hs, dim=0)
        c_n = Stack.apply(*cs, dim=0) if lstm else None
        if not batched:
            x, h_n = x.squeeze(1), h_n.squeeze(1)
            c_n = c_n.squeeze(1) if lstm else None
        elif self.batch_first:
            x = x.transpose(0, 1)
        return (x, (h_n, c_n)) if lstm else (x, h_n)


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu), stacked.

    >>> rnn = nn.RNN(10, 20, num_layers=2)
    >>> output, h_n = rnn(rg.randn(5, 3, 10))        # (5, 3, 20), (2, 3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r}; use 'tanh' or 'relu'")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype=dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory (Hochreiter & Schmidhuber, 1997), stacked; PyTorch's gates:

        i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)
        c_t = f * c_{t-1} + i * g,    h_t = o * tanh(c_t)

    >>> lstm = nn.LSTM(10, 20, batch_first=True)
    >>> output, (h_n, c_n) = lstm(rg.randn(3, 5, 10))   # (3, 5, 20), (1, 3, 20), (1, 3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, dtype=dtype)


class GRU(RNNBase):
    """Gated recurrent unit (Cho et al., 2014), stacked; PyTorch's gates:

        r, z = sigmoid(x_t W_i{r,z}^T + b_i{r,z} + h_{t-1} W_h{r,z}^T + b_h{r,z})
        n = tanh(x_t W_in^T + b_in + r * (h_{t-1} W_hn^T + b_hn)),   h_t = (1 - z) * n + z * h_{t-1}

    >>> gru = nn.GRU(10, 20, bidirectional=True)
    >>> output, h_n = gru(rg.randn(5, 3, 10))        # (5, 3, 40), (2, 3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype=dtype)


# -- cells: one time step, for loops written by hand ----------------------------------------------

class RNNCellBase(Module):
    """Parameters of a single recurrent step: weight_ih (G*H, in), weight_hh (G*H, H), bias_ih,
    bias_hh, initialised U(-1/sqrt(H), 1/sqrt(H)) as in PyTorch."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int,
                 dtype=None):
        super().__init__()
        _check_sizes(input_size, hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        rows = num_chunks * hidden_size
        self.weight_ih = Parameter(empty(rows, input_size, dtype=dtype))
        self.weight_hh = Parameter(empty(rows, hidden_size, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(empty(rows, dtype=dtype))
            self.bias_hh = Parameter(empty(rows, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _prepare(self, x: Any, states: tuple, names: tuple) -> tuple:
        """Check x (batch, input_size) or (input_size,) and each state (batch, hidden_size) or
        (hidden_size,); return them batched (zeros for a missing state) and whether x was."""
        if not isinstance(x, Tensor):
            raise TypeError(f"{self!r}: expected a Tensor input, got {type(x).__name__}")
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"{self!r}: expected input of shape (batch, {self.input_size}) or "
                             f"({self.input_size},), got {tuple(x.shape)}")
        _check_dtype(self, x, self.weight_ih)
        batched = x.ndim == 2
        batch = x.shape[0] if batched else 1
        expected = (batch, self.hidden_size) if batched else (self.hidden_size,)
        out = []
        for state, name in zip(states, names):
            if state is None:
                out.append(np.zeros((batch, self.hidden_size), x.dtype))
                continue
            if not isinstance(state, Tensor) or tuple(state.shape) != expected:
                got = tuple(state.shape) if isinstance(state, Tensor) else type(state).__name__
                raise ValueError(f"{self!r}: expected {name} of shape {expected}, got {got}")
            _check_dtype(self, state, self.weight_ih)
            out.append(state if batched else state.unsqueeze(0))
        return (x if batched else x.unsqueeze(0)), out, batched

    def _params(self) -> tuple:
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh


class RNNCell(RNNCellBase):
    """One step of an Elman RNN: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu).

    >>> cell = nn.RNNCell(10, 20)
    >>> h = cell(rg.randn(3, 10))                    # (3, 20); pass h back in for the next step
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: unknown nonlinearity {nonlinearity!r}; use 'tanh' or "
                             "'relu'")
        super().__init__(input_size, hidden_size, bias, num_chunks=1, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._prepare(input, (hx,), ("hx",))
        h = rnn_cell(x, h, *self._params(), nonlinearity=self.nonlinearity)
        return h if batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step (gates i, f, g, o as in `LSTM`): (x, (h, c)) -> (h', c').

    >>> cell = nn.LSTMCell(10, 20)
    >>> h, c = cell(rg.randn(3, 10))                 # each (3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=4, dtype=dtype)

    def forward(self, input: Tensor, hx: tuple | None = None) -> tuple[Tensor, Tensor]:
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise ValueError(f"{self!r}: expected the state as a tuple (h, c), got "
                             f"{type(hx).__name__}")
        x, (h, c), batched = self._prepare(input, (None, None) if hx is None else tuple(hx),
                                           ("h", "c"))
        h, c = lstm_cell(x, h, c, *self._params())
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step (gates r, z, n as in `GRU`): (x, h) -> h'.

    >>> cell = nn.GRUCell(10, 20)
    >>> h = cell(rg.randn(3, 10))                    # (3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=3, dtype=dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._prepare(input, (hx,), ("hx",))
        h = gru_cell(x, h, *self._params())
        return h if batched else h.squeeze(0)
