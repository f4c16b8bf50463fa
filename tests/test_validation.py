"""Input validation at the public boundary: a wrong input is an error that names the layer (or loss)
and both the expected and the actual shape, before any arithmetic can produce a wrong answer.

One table of layers; each gets an input of the wrong rank and one with the wrong feature size.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import retrograd as rg
from retrograd import nn
from retrograd.data import DataLoader, TensorDataset


def x(*shape, dtype=np.float32):
    return rg.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(dtype))


def self_attend(m, t):
    return m(t, t, t)


def decode(m, t):
    return m(t, x(4, 2, 8))


# name, layer, how to call it, a good input shape, [(bad shape, what the message must expect)]
LAYERS = [
    ("Linear", lambda: nn.Linear(4, 3), None, (2, 4),
     [((), r"last dimension 4"), ((2, 5), r"last dimension 4")]),
    ("BatchNorm1d", lambda: nn.BatchNorm1d(4), None, (3, 4),
     [((2, 4, 3, 3), r"2-D or 3-D input with 4 channels"), ((2, 5), r"4 channels in dimension 1")]),
    ("BatchNorm2d", lambda: nn.BatchNorm2d(4), None, (2, 4, 3, 3),
     [((2, 4), r"4-D input"), ((2, 5, 3, 3), r"4 channels in dimension 1")]),
    ("LayerNorm", lambda: nn.LayerNorm((3, 4)), None, (2, 3, 4),
     [((4,), r"last 2 dimension\(s\) are \(3, 4\)"), ((2, 3, 5), r"are \(3, 4\)")]),
    ("Conv1d", lambda: nn.Conv1d(2, 4, 3), None, (1, 2, 8),
     [((1, 2, 3, 8), r"2-D \(unbatched\) or 3-D"), ((1, 3, 8), r"2 channels in dimension 1")]),
    ("Conv2d", lambda: nn.Conv2d(2, 4, 3), None, (1, 2, 8, 8),
     [((2, 8), r"3-D \(unbatched\) or 4-D"), ((1, 3, 8, 8), r"2 channels in dimension 1")]),
    ("ConvTranspose2d", lambda: nn.ConvTranspose2d(2, 4, 3), None, (1, 2, 5, 5),
     [((2, 8), r"3-D \(unbatched\) or 4-D"), ((1, 3, 5, 5), r"2 channels in dimension 1")]),
    ("MaxPool2d", lambda: nn.MaxPool2d(2), None, (1, 2, 4, 4),
     [((8,), r"3-D \(unbatched\) or 4-D")]),
    ("AvgPool2d", lambda: nn.AvgPool2d(2), None, (1, 2, 4, 4),
     [((8,), r"3-D \(unbatched\) or 4-D")]),
    ("RNN", lambda: nn.RNN(4, 5), None, (3, 2, 4),
     [((2, 3, 4, 1), r"3-D input \(seq_len, batch, 4\)"), ((2, 3, 6), r"\(input_size\) 4")]),
    ("LSTM", lambda: nn.LSTM(4, 5, batch_first=True), None, (2, 3, 4),
     [((6,), r"3-D input"), ((2, 3, 6), r"\(input_size\) 4")]),
    ("GRU", lambda: nn.GRU(4, 5), None, (3, 2, 4),
     [((2, 3, 4, 1), r"3-D input"), ((2, 3, 6), r"\(input_size\) 4")]),
    ("RNNCell", lambda: nn.RNNCell(4, 5), None, (2, 4),
     [((2, 3, 4), r"\(batch, 4\) or \(4,\)"), ((2, 6), r"\(batch, 4\) or \(4,\)")]),
    ("LSTMCell", lambda: nn.LSTMCell(4, 5), None, (2, 4),
     [((2, 3, 4), r"\(batch, 4\) or \(4,\)"), ((2, 6), r"\(batch, 4\) or \(4,\)")]),
    ("GRUCell", lambda: nn.GRUCell(4, 5), None, (2, 4),
     [((2, 3, 4), r"\(batch, 4\) or \(4,\)"), ((2, 6), r"\(batch, 4\) or \(4,\)")]),
    ("MultiheadAttention", lambda: nn.MultiheadAttention(8, 2), self_attend, (3, 2, 8),
     [((2, 3, 4, 8), r"unbatched 2-D or batched 3-D"), ((2, 3, 6), r"embed_dim=8")]),
    ("TransformerEncoderLayer", lambda: nn.TransformerEncoderLayer(8, 2, 16), None, (3, 2, 8),
     [((8,), r"\(S, N, 8\)"), ((3, 2, 6), r"\(S, N, 8\)")]),
    ("TransformerDecoderLayer", lambda: nn.TransformerDecoderLayer(8, 2, 16), decode, (3, 2, 8),
     [((2, 3, 4, 8), r"\(S, N, 8\)"), ((3, 2, 6), r"\(S, N, 8\)")]),
]
CASES = [pytest.param(name, make, call, good, bad, expect, id=f"{name}-{bad}")
         for name, make, call, good, bads in LAYERS for bad, expect in bads]


@pytest.mark.parametrize("name, make, call, good, bad, expect", CASES)
def test_a_wrong_input_shape_names_the_layer_and_both_shapes(name, make, call, good, bad,
                                                              expect):
    layer = make()
    call = call or (lambda m, t: m(t))
    call(layer, x(*good))                                   # the check is not spurious
    with pytest.raises(ValueError) as err:
        call(layer, x(*bad))
    msg = str(err.value)
    assert msg.startswith(name), msg                        # which layer
    assert re.search(expect, msg), msg                      # what it expected
    assert str(tuple(bad)) in msg, msg                      # what it got


DTYPE_LAYERS = [
    ("Linear", lambda: nn.Linear(4, 3), None, (2, 4)),
    ("Conv2d", lambda: nn.Conv2d(2, 4, 3), None, (1, 2, 8, 8)),
    ("BatchNorm1d", lambda: nn.BatchNorm1d(4), None, (3, 4)),
    ("LayerNorm", lambda: nn.LayerNorm(4), None, (3, 4)),
    ("LSTM", lambda: nn.LSTM(4, 5), None, (3, 2, 4)),
    ("MultiheadAttention", lambda: nn.MultiheadAttention(8, 2), self_attend, (3, 2, 8)),
    ("TransformerEncoderLayer", lambda: nn.TransformerEncoderLayer(8, 2, 16), None, (3, 2, 8)),
]


@pytest.mark.parametrize("name, make, call, shape", DTYPE_LAYERS, ids=[c[0] for c in DTYPE_LAYERS])
def test_float64_into_a_float32_layer_is_an_error_as_in_pytorch(name, make, call, shape):
    """No silent upcast of the whole network; the message says which dtypes and how to fix."""
    layer = make()
    call = call or (lambda m, t: m(t))
    with pytest.raises((TypeError, ValueError)) as err:
        call(layer, x(*shape, dtype=np.float64))
    msg = str(err.value)
    assert "float64" in msg and "float32" in msg and ("double" in msg or "float64)" in msg), msg
    out = call(layer.double(), x(*shape, dtype=np.float64))   # the fix the message suggests
    out = out[0] if isinstance(out, tuple) else out
    assert out.dtype == np.float64


def test_embedding_ids_are_checked():
    emb = nn.Embedding(10, 3)
    for ids in ([1, 10], [-1, 2]):
        with pytest.raises(IndexError, match=r"Embedding\(10, 3\).*out of range.*\[0, 10\)"):
            emb(rg.tensor(ids))
    with pytest.raises(TypeError, match=r"Embedding\(10, 3\).*integer ids.*float32"):
        emb(x(2))


# -- losses ----------------------------------------------------------------------------------------

def test_class_index_out_of_range_is_an_error_not_a_wrong_answer():
    logits = x(4, 3)
    for loss in (nn.CrossEntropyLoss(), nn.NLLLoss()):
        with pytest.raises(IndexError, match=r"target class 3 is out of range for 3 classes"):
            loss(logits, rg.tensor([0, 1, 3, 2]))
        with pytest.raises(IndexError, match=r"target class -2"):
            loss(logits, rg.tensor([0, -2, 1, 2]))
        assert np.isfinite(float(loss(logits, rg.tensor([0, -100, 1, 2])).data))  # ignore_index


def test_loss_targets_of_the_wrong_shape_or_dtype():
    logits = x(4, 3)
    with pytest.raises(ValueError, match=r"target of shape \(3,\) does not match input of shape "
                                         r"\(4, 3\).*\(4,\)"):
        nn.CrossEntropyLoss()(logits, rg.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match=r"must be integers, got dtype float32"):
        nn.NLLLoss()(logits, x(4))
    for loss in (nn.MSELoss(), nn.L1Loss(), nn.HuberLoss(), nn.BCEWithLogitsLoss()):
        with pytest.raises(ValueError, match=r"target of shape \(4,\) does not match input of "
                                             r"shape \(4, 1\)"):
            loss(x(4, 1), x(4))          # (N, 1) vs (N,) would broadcast to (N, N): refused


def test_binary_cross_entropy_checks_its_ranges():
    p = rg.from_numpy(np.array([0.2, 0.9, 0.5, 0.1], np.float32))
    with pytest.raises(ValueError, match=r"target should be in \[0, 1\], got values from 0.0 "
                                         r"to 2.0"):
        nn.BCELoss()(p, rg.tensor([0.0, 1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match=r"input should be probabilities"):
        nn.BCELoss()(p * 2, rg.tensor([0.0, 1.0, 1.0, 0.0]))


# -- data ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "8"])
def test_dataloader_checks_the_batch_size(batch_size):
    with pytest.raises((ValueError, TypeError), match=r"DataLoader: batch_size must be a "
                                                      r"positive integer"):
        DataLoader(TensorDataset(x(4, 2)), batch_size=batch_size)


def test_inputs_and_targets_of_different_lengths():
    with pytest.raises(ValueError, match=r"same size in the first dimension.*\(4, 2\).*\(3,\)"):
        TensorDataset(x(4, 2), rg.tensor([0, 1, 0]))
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"\(4, 2\).*\(3,\)"):
        rg.train.fit(model, nn.CrossEntropyLoss(), rg.optim.SGD(model.parameters(), lr=0.1),
                     (np.zeros((4, 2)), np.array([0, 1, 0])), progress=False)
