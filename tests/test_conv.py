"""Convolution, pooling and upsampling against PyTorch.

A table of layers, each built in both libraries with torch's (randomised) weights loaded into ours
through `load_state_dict`: forward output, input gradient and every parameter gradient equal torch's
in float32, and `rg.gradcheck` passes in float64. Then the functional ops over grids of options
(stride, padding incl. 'same', dilation, groups, bias, memory layout), max-pool ties and NaN,
input validation messages, initialisation and reprs, and a small CNN that learns.
"""
from __future__ import annotations

import itertools
import math
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch

import retrograd as rg
from retrograd import nn, optim
from retrograd.nn.conv import Conv1d, Conv2d, ConvTranspose2d
from retrograd.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool1d, MaxPool2d, Upsample
from retrograd.ops import conv as C
from retrograd.ops import pool as P
from helpers import assert_close

TF = torch.nn.functional

# torch's note that its own 'same' padding with even kernels copies the input
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

# Our layers by torch's names, so that `make(lib)` builds the same layer in either library.
LAYERS_OF = {"Conv1d": Conv1d, "Conv2d": Conv2d, "ConvTranspose2d": ConvTranspose2d,
             "MaxPool1d": MaxPool1d, "MaxPool2d": MaxPool2d, "AvgPool2d": AvgPool2d,
             "AdaptiveAvgPool2d": AdaptiveAvgPool2d, "Upsample": Upsample}


def layer_of(lib, name):
    return getattr(torch.nn, name) if lib is torch else LAYERS_OF[name]


def randomise(model: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in model.parameters():
            t.copy_(torch.randn(t.shape, generator=g))


def pair(make: Callable, seed: int = 0):
    """(torch module, retrograd module) holding the same random weights."""
    t = make(torch)
    randomise(t, seed)
    r = make(rg)
    assert r.load_state_dict({k: v.detach().numpy().copy() for k, v in t.state_dict().items()}) \
        == ([], [])
    return t, r


# -- the layer table ------------------------------------------------------------------------------

@dataclass
class Layer:
    name: str
    make: Callable                  # lib -> module
    shape: tuple                    # input shape, drawn N(0, 1)
    channels_last: bool = False     # feed ours the input in channels-last memory

    def input(self) -> np.ndarray:
        return np.random.default_rng(zlib.crc32(self.name.encode())).standard_normal(self.shape)


def layer(name, make, shape, channels_last=False):
    return pytest.param(Layer(name, make, shape, channels_last), id=name)


def L(name, *args, **kwargs):
    """A maker: lib -> that library's layer `name`(*args, **kwargs)."""
    return lambda lib: layer_of(lib, name)(*args, **kwargs)


def small_cnn(lib):
    n = lib.nn
    return n.Sequential(layer_of(lib, "Conv2d")(2, 4, 3, padding=1), n.ReLU(),
                        layer_of(lib, "MaxPool2d")(2), layer_of(lib, "Conv2d")(4, 6, (2, 3)),
                        n.Tanh(), layer_of(lib, "AvgPool2d")(2, stride=1),
                        layer_of(lib, "Conv2d")(6, 6, 1, groups=3), n.Flatten(), n.Linear(24, 3))


def encoder_decoder(lib):
    n = lib.nn
    return n.Sequential(layer_of(lib, "Conv2d")(3, 4, 3, stride=2, padding=1), n.Tanh(),
                        layer_of(lib, "ConvTranspose2d")(4, 3, 3, stride=2, padding=1,
                                                         output_padding=1), n.Tanh(),
                        layer_of(lib, "Upsample")(scale_factor=2),
                        layer_of(lib, "Conv2d")(3, 2, 3, padding="same"),
                        layer_of(lib, "AdaptiveAvgPool2d")((3, 2)))


LAYERS = [
    layer("conv2d", L("Conv2d", 3, 4, 3), (2, 3, 6, 7)),
    layer("conv2d_batch1_no_bias", L("Conv2d", 3, 2, 3, bias=False), (1, 3, 5, 5)),
    layer("conv2d_unbatched", L("Conv2d", 2, 3, 2), (2, 5, 4)),
    layer("conv2d_stride_padding", L("Conv2d", 3, 4, 3, stride=2, padding=1), (2, 3, 7, 6)),
    layer("conv2d_nonsquare", L("Conv2d", 2, 3, (3, 2), stride=(2, 1), padding=(1, 2)),
          (2, 2, 7, 5)),
    layer("conv2d_dilation", L("Conv2d", 2, 3, 3, dilation=(2, 1), padding=2), (2, 2, 7, 6)),
    layer("conv2d_same_even_kernel", L("Conv2d", 2, 3, (4, 2), padding="same"), (2, 2, 6, 5)),
    layer("conv2d_same_dilated", L("Conv2d", 2, 2, (2, 3), padding="same", dilation=(3, 2)),
          (1, 2, 7, 6)),
    layer("conv2d_valid", L("Conv2d", 2, 3, 2, padding="valid"), (2, 2, 4, 5)),
    layer("conv2d_groups", L("Conv2d", 4, 6, 3, groups=2, padding=1), (2, 4, 5, 5)),
    layer("conv2d_depthwise", L("Conv2d", 3, 6, 3, groups=3, bias=False), (2, 3, 5, 6)),
    layer("conv2d_1x1", L("Conv2d", 4, 2, 1), (2, 4, 3, 3)),
    layer("conv2d_channels_last", L("Conv2d", 3, 4, 3, stride=2, padding=1), (2, 3, 7, 6),
          channels_last=True),
    layer("conv2d_channels_last_groups", L("Conv2d", 4, 4, 3, groups=2, dilation=2, padding=2),
          (2, 4, 6, 5), channels_last=True),
    layer("conv1d", L("Conv1d", 3, 4, 3), (2, 3, 9)),
    layer("conv1d_stride_padding", L("Conv1d", 2, 3, 4, stride=2, padding=2), (2, 2, 9)),
    layer("conv1d_same_even_dilated", L("Conv1d", 2, 3, 4, padding="same", dilation=2),
          (2, 2, 10)),
    layer("conv1d_groups_no_bias", L("Conv1d", 4, 2, 3, groups=2, bias=False), (1, 4, 7)),
    layer("conv1d_unbatched", L("Conv1d", 2, 3, 2), (2, 6)),
    layer("conv_transpose2d", L("ConvTranspose2d", 3, 2, 3), (2, 3, 4, 5)),
    layer("conv_transpose2d_stride_output_padding",
          L("ConvTranspose2d", 3, 4, 3, stride=2, padding=1, output_padding=1), (2, 3, 4, 3)),
    layer("conv_transpose2d_nonsquare",
          L("ConvTranspose2d", 2, 3, (2, 3), stride=(2, 3), padding=(1, 0),
            output_padding=(1, 2)), (1, 2, 3, 4)),
    layer("conv_transpose2d_groups_dilation",
          L("ConvTranspose2d", 4, 6, 3, groups=2, dilation=2, padding=1, bias=False),
          (2, 4, 4, 4)),
    layer("conv_transpose2d_channels_last", L("ConvTranspose2d", 3, 2, 2, stride=2),
          (2, 3, 3, 4), channels_last=True),
    layer("conv_transpose2d_unbatched", L("ConvTranspose2d", 2, 3, 3, stride=2), (2, 3, 3)),
    layer("maxpool2d", L("MaxPool2d", 2), (2, 3, 6, 8)),
    layer("maxpool2d_overlap_padding", L("MaxPool2d", 3, stride=2, padding=1), (2, 2, 7, 6)),
    layer("maxpool2d_nonsquare_dilation", L("MaxPool2d", (3, 2), stride=(1, 2), dilation=(2, 1)),
          (1, 2, 7, 6)),
    layer("maxpool2d_ceil", L("MaxPool2d", 3, stride=2, ceil_mode=True), (2, 2, 8, 7)),
    layer("maxpool2d_channels_last", L("MaxPool2d", 2, padding=1), (2, 3, 5, 6),
          channels_last=True),
    layer("maxpool2d_unbatched", L("MaxPool2d", 2), (3, 4, 5)),
    layer("maxpool1d", L("MaxPool1d", 3, stride=2, padding=1, dilation=2, ceil_mode=True),
          (2, 3, 10)),
    layer("maxpool1d_unbatched", L("MaxPool1d", 2), (3, 7)),
    layer("avgpool2d", L("AvgPool2d", 2), (2, 3, 6, 8)),
    layer("avgpool2d_padding", L("AvgPool2d", 3, stride=2, padding=1), (2, 2, 7, 6)),
    layer("avgpool2d_exclude_pad", L("AvgPool2d", 3, stride=2, padding=1,
                                     count_include_pad=False), (2, 2, 7, 6)),
    layer("avgpool2d_ceil", L("AvgPool2d", (3, 2), stride=2, padding=1, ceil_mode=True),
          (1, 2, 8, 7)),
    layer("avgpool2d_divisor_override", L("AvgPool2d", 2, stride=1, divisor_override=3),
          (2, 2, 4, 5), channels_last=True),
    layer("adaptive_avgpool2d_divisible", L("AdaptiveAvgPool2d", (4, 3)), (2, 3, 8, 6)),
    layer("adaptive_avgpool2d_non_divisible", L("AdaptiveAvgPool2d", (3, 4)), (2, 3, 7, 9)),
    layer("adaptive_avgpool2d_global", L("AdaptiveAvgPool2d", 1), (2, 3, 5, 4)),
    layer("adaptive_avgpool2d_none_upsize", L("AdaptiveAvgPool2d", (None, 7)), (3, 4, 5)),
    layer("upsample_scale2", L("Upsample", scale_factor=2), (2, 3, 3, 4)),
    layer("upsample_scale_pair", L("Upsample", scale_factor=(1.5, 0.5)), (2, 2, 4, 6)),
    layer("upsample_size", L("Upsample", size=(7, 3)), (1, 2, 3, 4), channels_last=True),
    layer("upsample_1d", L("Upsample", size=11), (2, 3, 4)),
    layer("small_cnn", small_cnn, (2, 2, 8, 10)),
    layer("encoder_decoder", encoder_decoder, (2, 3, 8, 6)),
]


def _inputs(c: Layer, dtype):
    """(torch input, our leaf, our input): ours in channels-last memory when the row asks."""
    x = c.input().astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    if c.channels_last:
        leaf = rg.tensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), requires_grad=True)
        rx = leaf.permute(0, 3, 1, 2)
        assert not rx.data.flags.c_contiguous
    else:
        leaf = rx = rg.tensor(x, requires_grad=True)
    return tx, leaf, rx


@pytest.mark.parametrize("c", LAYERS)
def test_layer_matches_torch(c: Layer):
    t, r = pair(c.make)
    tx, leaf, rx = _inputs(c, np.float32)
    tout, rout = t(tx), r(rx)
    assert rout.dtype == np.float32
    assert_close(rout.data, tout.detach().numpy(), f"{c.name}: output")
    g = np.random.default_rng(1).standard_normal(tout.shape).astype(np.float32)
    tout.backward(torch.tensor(g))
    rout.backward(g)
    grad = leaf.grad.data.transpose(0, 3, 1, 2) if c.channels_last else leaf.grad.data
    assert leaf.grad.dtype == np.float32
    assert_close(grad, tx.grad.numpy(), f"{c.name}: input gradient")
    ours = dict(r.named_parameters())
    assert list(ours) == [n for n, _ in t.named_parameters()]
    for name, p in t.named_parameters():
        assert ours[name].grad.dtype == np.float32
        assert_close(ours[name].grad.data, p.grad.numpy(), f"{c.name}: gradient of {name}")


@pytest.mark.parametrize("c", LAYERS)
def test_layer_gradcheck(c: Layer):
    _, r = pair(c.make)
    r.double()
    _, leaf, rx = _inputs(c, np.float64)
    params = list(r.parameters())
    assert rg.gradcheck(lambda x, *ps: r(x.permute(0, 3, 1, 2) if c.channels_last else x),
                        (leaf, *params))


# -- functional ops over grids of options ----------------------------------------------------------

def _compare(name, ours_fn, torch_fn, arrays, grads=True, channels_last=False):
    """Run both on the same float32 arrays (the first is the input), compare the output and the
    gradient of every array."""
    rs = [rg.tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    ts = [torch.tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    x = rs[0]
    if channels_last:
        rs[0] = rg.tensor(np.ascontiguousarray(arrays[0].astype(np.float32).transpose(0, 2, 3, 1)),
                          requires_grad=True)
        x = rs[0].permute(0, 3, 1, 2)
    rout, tout = ours_fn(x, *rs[1:]), torch_fn(*ts)
    assert_close(rout.data, tout.detach().numpy(), f"{name}: output")
    if not grads:
        return
    g = np.random.default_rng(2).standard_normal(tout.shape).astype(np.float32)
    rout.backward(g)
    tout.backward(torch.tensor(g))
    for i, (r, t) in enumerate(zip(rs, ts)):
        ours = r.grad.data.transpose(0, 3, 1, 2) if channels_last and i == 0 else r.grad.data
        assert_close(ours, t.grad.numpy(), f"{name}: gradient of argument {i}")


def _id(options: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in options.items()).replace(" ", "")


def grid(alternate: dict, **axes) -> list[dict]:
    """Every combination of `axes`; the `alternate` options cycle through their values along the
    grid instead of multiplying it (each value still meets many of the others)."""
    combos = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    for i, combo in enumerate(combos):
        for j, (name, values) in enumerate(alternate.items()):
            combo[name] = values[(i >> j) % len(values)]
    return combos


CONV2D_GRID = [o for o in grid(dict(bias=(True, False), layout=("nchw", "nhwc")),
                               stride=(1, 2), padding=(0, 1, (2, 1), "same", "valid"),
                               dilation=(1, 2), groups=(1, 2))
               if not (o["padding"] == "same" and o["stride"] != 1)]


@pytest.mark.parametrize("o", CONV2D_GRID, ids=_id)
def test_conv2d_grid(o):
    rng = np.random.default_rng(0)
    g = o["groups"]
    x, w, b = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((6, 4 // g, 3, 2)), \
        rng.standard_normal(6)
    kw = dict(stride=o["stride"], padding=o["padding"], dilation=o["dilation"], groups=g)
    arrays = [x, w, b] if o["bias"] else [x, w]
    _compare("conv2d", lambda *a: C.conv2d(*a, **kw), lambda *a: TF.conv2d(*a, **kw), arrays,
             channels_last=o["layout"] == "nhwc")


CONV1D_GRID = [o for o in grid({}, stride=(1, 3), padding=(0, 2, "same", "valid"),
                               dilation=(1, 2), groups=(1, 3))
               if not (o["padding"] == "same" and o["stride"] != 1)]


@pytest.mark.parametrize("o", CONV1D_GRID, ids=_id)
def test_conv1d_grid(o):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 6, 11)), rng.standard_normal((3, 6 // o["groups"], 4)), \
        rng.standard_normal(3)
    _compare("conv1d", lambda *a: C.conv1d(*a, **o), lambda *a: TF.conv1d(*a, **o), [x, w, b])


CONV_T_GRID = [o for o in grid(dict(bias=(True, False)), stride=(1, 2), padding=(0, 1),
                               output_padding=(0, 1), dilation=(1, 2), groups=(1, 2))
               if o["output_padding"] < max(o["stride"], o["dilation"])]


@pytest.mark.parametrize("o", CONV_T_GRID, ids=_id)
def test_conv_transpose2d_grid(o):
    rng = np.random.default_rng(0)
    g = o["groups"]
    x, w, b = rng.standard_normal((2, 4, 4, 5)), rng.standard_normal((4, 6 // g, 3, 2)), \
        rng.standard_normal(6)
    kw = {k: v for k, v in o.items() if k != "bias"}
    arrays = [x, w, b] if o["bias"] else [x, w]
    _compare("conv_transpose2d", lambda *a: C.conv_transpose2d(*a, **kw),
             lambda *a: TF.conv_transpose2d(*a, **kw), arrays)


MAX_POOL_GRID = grid(dict(layout=("nchw", "nhwc")), kernel_size=(2, 3, (3, 2)),
                     stride=(None, 1, 2), padding=(0, 1), dilation=(1, 2), ceil_mode=(False, True))


@pytest.mark.parametrize("o", MAX_POOL_GRID, ids=_id)
def test_max_pool2d_grid(o):
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 7))   # no ties: PyTorch's own order
    kw = {k: v for k, v in o.items() if k != "layout"}
    _compare("max_pool2d", lambda a: P.max_pool2d(a, **kw), lambda a: TF.max_pool2d(a, **kw), [x],
             channels_last=o["layout"] == "nhwc")


@pytest.mark.parametrize("o", grid(dict(count_include_pad=(True, False)),
                                   kernel_size=(2, 3, (3, 2)), stride=(None, 1, 2),
                                   padding=(0, 1), ceil_mode=(False, True)), ids=_id)
def test_avg_pool2d_grid(o):
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 7))
    _compare("avg_pool2d", lambda a: P.avg_pool2d(a, **o), lambda a: TF.avg_pool2d(a, **o), [x])


@pytest.mark.parametrize("o", grid(dict(ceil_mode=(False, True)), kernel_size=(2, 3),
                                   stride=(None, 2), padding=(0, 1), dilation=(1, 2)), ids=_id)
def test_max_pool1d_grid(o):
    x = np.random.default_rng(0).standard_normal((2, 3, 11))
    _compare("max_pool1d", lambda a: P.max_pool1d(a, **o), lambda a: TF.max_pool1d(a, **o), [x])


@pytest.mark.parametrize("shape,size", [((2, 3, 8, 6), (4, 3)), ((2, 3, 7, 9), (3, 4)),
                                        ((1, 2, 5, 5), (5, 5)), ((1, 2, 5, 6), (8, 9)),
                                        ((2, 3, 10, 7), (3, None)), ((1, 2, 6, 6), 4)])
def test_adaptive_avg_pool2d(shape, size):
    x = np.random.default_rng(0).standard_normal(shape)
    _compare("adaptive_avg_pool2d", lambda a: P.adaptive_avg_pool2d(a, size),
             lambda a: TF.adaptive_avg_pool2d(a, size), [x])


@pytest.mark.parametrize("shape,kw", [
    ((2, 3, 4, 5), dict(scale_factor=2)), ((2, 3, 4, 5), dict(scale_factor=3)),
    ((2, 3, 4, 5), dict(scale_factor=(1.7, 0.6))), ((2, 3, 5, 5), dict(scale_factor=0.5)),
    ((2, 3, 4, 5), dict(size=(7, 3))), ((2, 3, 4, 5), dict(size=(4, 10))),
    ((2, 3, 5), dict(size=13)), ((2, 3, 5), dict(scale_factor=2.5)),
    ((1, 2, 3, 4, 5), dict(scale_factor=(2, 1.5, 0.5))),
    ((2, 3, 5, 5), dict(scale_factor=1.3, recompute_scale_factor=True)),
    ((2, 3, 7, 7), dict(scale_factor=1.3)),
], ids=str)
def test_interpolate_nearest(shape, kw):
    x = np.random.default_rng(0).standard_normal(shape)
    _compare("interpolate", lambda a: P.interpolate(a, **kw), lambda a: TF.interpolate(a, **kw),
             [x])


FUNCTIONAL_GRADCHECK = [
    ("conv2d", lambda x, w, b: C.conv2d(x, w, b, stride=(2, 1), padding="valid", dilation=(1, 2)),
     [(2, 4, 6, 7), (2, 4, 2, 2), (2,)]),
    ("conv2d_groups_same", lambda x, w: C.conv2d(x, w, padding="same", groups=2),
     [(1, 4, 5, 4), (4, 2, 2, 3)]),
    ("conv2d_channels_last", lambda x, w: C.conv2d(x.permute(0, 3, 1, 2), w, stride=2, padding=1),
     [(2, 5, 5, 3), (2, 3, 3, 3)]),
    ("conv1d", lambda x, w, b: C.conv1d(x, w, b, stride=2, padding=1, groups=3),
     [(2, 3, 8), (6, 1, 3), (6,)]),
    ("conv_transpose2d",
     lambda x, w, b: C.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=(1, 0),
                                        groups=2, dilation=(1, 2)),
     [(2, 4, 3, 3), (4, 1, 3, 2), (2,)]),
    ("max_pool2d", lambda x: P.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
     [(2, 2, 6, 7)]),
    ("max_pool2d_channels_last", lambda x: P.max_pool2d(x.permute(0, 3, 1, 2), 2),
     [(2, 4, 6, 3)]),
    ("max_pool1d", lambda x: P.max_pool1d(x, 2, stride=1, dilation=2), [(2, 3, 7)]),
    ("avg_pool2d", lambda x: P.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True,
                                          count_include_pad=False), [(2, 2, 6, 7)]),
    ("adaptive_avg_pool2d", lambda x: P.adaptive_avg_pool2d(x, (3, 4)), [(2, 2, 7, 9)]),
    ("interpolate", lambda x: P.interpolate(x, size=(5, 3)), [(2, 2, 3, 4)]),
]


@pytest.mark.parametrize("name,fn,shapes", FUNCTIONAL_GRADCHECK, ids=[c[0] for c in
                                                                       FUNCTIONAL_GRADCHECK])
def test_functional_gradcheck(name, fn, shapes):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    inputs = [rg.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]
    assert rg.gradcheck(fn, inputs)


# -- max pooling: ties, NaN, inference -------------------------------------------------------------

@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1),
                                dict(kernel_size=(2, 3), stride=(2, 1), dilation=(1, 2)),
                                dict(kernel_size=3, stride=2, ceil_mode=True)], ids=str)
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_max_pool_ties_go_to_the_first_maximum_like_torch(kw, layout):
    x = np.random.default_rng(0).integers(0, 3, (2, 3, 7, 8)).astype(np.float64)
    x[0, 0] = 1.0                                   # a whole plane of ties
    _compare("max_pool2d ties", lambda a: P.max_pool2d(a, **kw), lambda a: TF.max_pool2d(a, **kw),
             [x], channels_last=layout == "nhwc")
    # in words: in a window of equal values only the first (row-major) gets the gradient
    x = rg.tensor(np.ones((1, 1, 2, 2), np.float32), requires_grad=True)
    P.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.data[0, 0], [[1, 0], [0, 0]])


def test_max_pool_nan_propagates_like_torch():
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 6)).astype(np.float32)
    x[0, 0, 1, 1] = x[0, 0, 0, 1] = x[0, 1, 4, 4] = np.nan
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=1)):
        t = torch.tensor(x, requires_grad=True)
        r = rg.tensor(x, requires_grad=True)
        tout, rout = TF.max_pool2d(t, **kw), P.max_pool2d(r, **kw)
        np.testing.assert_array_equal(np.isnan(rout.data), np.isnan(tout.detach().numpy()))
        tout.sum().backward()
        rout.sum().backward()
        np.testing.assert_array_equal(r.grad.data, t.grad.numpy())


def test_pooling_and_conv_under_no_grad_match_grad_mode():
    x = rg.randn(2, 3, 7, 7)
    conv = Conv2d(3, 4, 3, padding=1)
    with rg.no_grad():
        y = P.max_pool2d(conv(x), 3, stride=2, padding=1)
    assert not y.requires_grad
    np.testing.assert_array_equal(y.data, P.max_pool2d(conv(x), 3, stride=2, padding=1).data)


# -- layers: parameters, initialisation, repr ------------------------------------------------------

MODULES = [
    ("Conv1d", (4, 6, 3), dict(stride=2, padding=1, groups=2)),
    ("Conv2d", (3, 8, 3), {}),
    ("Conv2d", (4, 8, (3, 2)), dict(stride=(2, 1), padding=(1, 0), dilation=2, groups=4,
                                    bias=False)),
    ("Conv2d", (2, 4, 4), dict(padding="same")),
    ("ConvTranspose2d", (4, 6, 3), dict(stride=2, padding=1, output_padding=1, groups=2)),
    ("MaxPool2d", (2,), {}),
    ("MaxPool2d", (3,), dict(stride=2, padding=1, dilation=2, ceil_mode=True)),
    ("MaxPool1d", (3,), dict(stride=1)),
    ("AvgPool2d", ((3, 2),), dict(stride=1, padding=1)),
    ("AdaptiveAvgPool2d", ((None, 4),), {}),
    ("Upsample", (), dict(scale_factor=2)),
    ("Upsample", (), dict(size=(4, 5))),
]


@pytest.mark.parametrize("name,args,kwargs", MODULES, ids=[m[0] for m in MODULES])
def test_repr_and_state_dict_equal_torchs(name, args, kwargs):
    t, r = getattr(torch.nn, name)(*args, **kwargs), LAYERS_OF[name](*args, **kwargs)
    assert repr(r) == repr(t)
    assert {k: tuple(v.shape) for k, v in r.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in t.state_dict().items()}


@pytest.mark.parametrize("make,fan_in", [(lambda: Conv2d(16, 32, 3), 16 * 9),
                                         (lambda: Conv1d(8, 64, 5, groups=4), 2 * 5),
                                         (lambda: ConvTranspose2d(32, 16, 4, groups=2), 8 * 16)])
def test_init_is_torchs_kaiming_uniform(make, fan_in):
    rg.manual_seed(0)
    m = make()
    bound = 1 / math.sqrt(fan_in)       # kaiming_uniform_(a=sqrt(5)) and PyTorch's bias bound
    for p in (m.weight, m.bias):
        assert p.dtype == np.float32
        assert np.abs(p.data).max() <= bound
    # uniform over [-bound, bound]: reaches near both ends, standard deviation bound / sqrt(3)
    w = m.weight.data
    assert w.max() > 0.95 * bound and w.min() < -0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound


def test_conv_transpose2d_output_size_picks_output_padding():
    t, r = pair(L("ConvTranspose2d", 3, 2, 3, stride=2, padding=1))
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 5)).astype(np.float32)
    for size in [(7, 9), (8, 10), (1, 2, 8, 9)]:
        tout = t(torch.tensor(x), output_size=size)
        rout = r(rg.tensor(x), output_size=size)
        assert_close(rout.data, tout.detach().numpy(), f"output_size={size}")
    with pytest.raises(ValueError, match=r"requested an output size of \(9, 9\), but valid sizes "
                                         r"range from \(7, 9\) to \(8, 10\)"):
        r(rg.tensor(x), output_size=(9, 9))


def test_float64_stays_float64():
    m = Conv2d(2, 3, 3).double()
    x = rg.randn(1, 2, 5, 5, dtype=rg.float64, requires_grad=True)
    y = P.avg_pool2d(P.max_pool2d(m(x), 2, stride=1), 2)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == m.weight.grad.dtype == np.float64


# -- input validation ------------------------------------------------------------------------------

def test_conv_errors_name_the_layer_and_the_shapes():
    conv = Conv2d(3, 8, 3)
    with pytest.raises(ValueError, match=r"^Conv2d\(3, 8, kernel_size=\(3, 3\), stride=\(1, 1\)\): "
                                         r"expected input with 3 channels in dimension 1 .*got "
                                         r"input of shape \(2, 4, 8, 8\)"):
        conv(rg.randn(2, 4, 8, 8))
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8.*expected a 3-D \(unbatched\) or 4-D "
                                         r"\(batched\) input of shape \(N, C, H, W\), got shape "
                                         r"\(8, 8\)"):
        conv(rg.randn(8, 8))
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8.*input of shape \(1, 3, 2, 5\) is smaller "
                                         r"than the kernel: padded size \(2 x 5\) < dilated "
                                         r"kernel size \(3 x 3\)"):
        conv(rg.randn(1, 3, 2, 5))
    with pytest.raises(ValueError, match=r"padded size \(4 x 4\) < dilated kernel size \(5 x 5\)"):
        Conv2d(1, 1, 3, padding=1, dilation=2)(rg.randn(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"^Conv1d.*expected a 2-D \(unbatched\) or 3-D "
                                         r"\(batched\) input of shape \(N, C, L\)"):
        Conv1d(3, 8, 3)(rg.randn(1, 3, 8, 8))


def test_conv_argument_errors():
    with pytest.raises(ValueError, match=r"Conv2d: in_channels=3 must be divisible by groups=2"):
        Conv2d(3, 8, 3, groups=2)
    with pytest.raises(ValueError, match=r"Conv2d: out_channels=6 must be divisible by groups=4"):
        Conv2d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match=r"conv2d: groups=4 must divide the output channels, "
                                         r"weight has shape \(6, 1, 3, 3\)"):
        C.conv2d(rg.randn(1, 4, 5, 5), rg.randn(6, 1, 3, 3), groups=4)
    with pytest.raises(ValueError, match=r"conv2d: expected input with 6 channels in dimension 1 "
                                         r"\(weight of shape \(6, 2, 3, 3\), groups=3\), got "
                                         r"input of shape \(1, 4, 5, 5\)"):
        C.conv2d(rg.randn(1, 4, 5, 5), rg.randn(6, 2, 3, 3), groups=3)
    with pytest.raises(ValueError, match=r"padding='same' is not supported for strided"):
        Conv2d(3, 8, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"padding must be 'same', 'valid'"):
        Conv2d(3, 8, 3, padding="full")
    with pytest.raises(NotImplementedError, match=r"padding_mode='reflect' is not supported; "
                                                  r"only 'zeros'"):
        Conv2d(3, 8, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"padding_mode must be one of"):
        Conv2d(3, 8, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match=r"Conv2d: stride must be an int or a tuple of 2 ints, "
                                         r"each >= 1, got \(1, 0\)"):
        Conv2d(3, 8, 3, stride=(1, 0))
    with pytest.raises(ValueError, match=r"conv2d: expected a bias of shape \(8,\), got \(4,\)"):
        C.conv2d(rg.randn(1, 3, 5, 5), rg.randn(8, 3, 3, 3), rg.randn(4))
    with pytest.raises(TypeError, match=r"conv2d: input dtype float32 and weight dtype float64"):
        C.conv2d(rg.randn(1, 3, 5, 5), rg.randn(8, 3, 3, 3, dtype=rg.float64))
    with pytest.raises(ValueError, match=r"ConvTranspose2d: output_padding \(1, 1\) must be "
                                         r"smaller than either stride \(1, 1\) or dilation"):
        ConvTranspose2d(4, 2, 3, output_padding=1)
    with pytest.raises(ValueError, match=r"^ConvTranspose2d\(4, 2.*expected input with 4 channels"):
        ConvTranspose2d(4, 2, 3)(rg.randn(1, 2, 5, 5))


def test_pool_and_upsample_errors():
    with pytest.raises(ValueError, match=r"^MaxPool2d\(kernel_size=2, stride=2, padding=2, "
                                         r"dilation=1, ceil_mode=False\): padding should be at "
                                         r"most half of the kernel size"):
        MaxPool2d(2, padding=2)(rg.randn(1, 1, 6, 6))
    with pytest.raises(ValueError, match=r"^MaxPool2d.*input of shape \(1, 1, 2, 2\) is too small "
                                         r"for the kernel \(3, 3\).*output would be 0 x 0"):
        MaxPool2d(3)(rg.randn(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"^AvgPool2d.*expected a 3-D \(unbatched\) or 4-D"):
        AvgPool2d(2)(rg.randn(4, 4))
    with pytest.raises(ValueError, match=r"^MaxPool1d.*expected a 2-D \(unbatched\) or 3-D"):
        MaxPool1d(2)(rg.randn(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"^AdaptiveAvgPool2d\(output_size=\(2, 2\)\): expected "
                                         r"a 3-D"):
        AdaptiveAvgPool2d((2, 2))(rg.randn(5))
    with pytest.raises(NotImplementedError, match=r"return_indices"):
        MaxPool2d(2, return_indices=True)
    with pytest.raises(NotImplementedError, match=r"mode='bilinear' is not supported; only "
                                                  r"'nearest'"):
        P.interpolate(rg.randn(1, 1, 4, 4), scale_factor=2, mode="bilinear")
    with pytest.raises(ValueError, match=r"give exactly one of size and scale_factor"):
        P.interpolate(rg.randn(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"align_corners"):
        P.interpolate(rg.randn(1, 1, 4, 4), scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match=r"^Upsample\(scale_factor=2.0, mode='nearest'\): "
                                         r"expected a 3-D, 4-D or 5-D input"):
        Upsample(scale_factor=2)(rg.randn(4, 4))


# -- it learns -------------------------------------------------------------------------------------

def test_small_cnn_learns_bars():
    """Horizontal vs vertical bars in noisy 8x8 images: a conv-pool-linear net separates them."""
    rng = np.random.default_rng(0)
    n = 64
    labels = rng.integers(0, 2, n)
    images = 0.3 * rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
    where = rng.integers(0, 8, n)
    for i in range(n):
        if labels[i]:
            images[i, 0, :, where[i]] += 1
        else:
            images[i, 0, where[i], :] += 1
    rg.manual_seed(0)
    model = nn.Sequential(Conv2d(1, 4, 3, padding=1), nn.ReLU(), MaxPool2d(2), nn.Flatten(),
                          nn.Linear(64, 2))
    opt = optim.Adam(model.parameters(), lr=0.03)
    x, y = rg.tensor(images), rg.tensor(labels)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    accuracy = (model(x).data.argmax(axis=1) == labels).mean()
    assert losses[-1] < 0.2 * losses[0] and accuracy > 0.95
