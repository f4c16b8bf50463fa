"""ONNX export: each model family is exported, passes onnx.checker, and onnxruntime gives the
outputs retrograd gives (within 1e-5) on new random inputs of another batch size than the traced
example, so the dynamic batch axis is exercised. Then the errors: unsupported ops, a dynamic axis
an op bakes in, onnx not installed; and `import retrograd` not importing onnx."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import retrograd as rg
from retrograd import nn
from retrograd.nn import functional as F

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _tensors(out):
    if isinstance(out, rg.Tensor):
        return [out]
    return [t for o in out for t in _tensors(o)] if isinstance(out, (tuple, list)) else []


def roundtrip(model, example, new_inputs, tmp_path=None, atol=1e-5, **options):
    """Export, check, run in onnxruntime on `new_inputs` and compare with the model itself.
    Returns the ModelProto."""
    path = None if tmp_path is None else tmp_path / "model.onnx"
    proto = rg.onnx.export(model, example, path, **options)
    onnx.checker.check_model(proto)
    if path is not None:
        assert path.exists()
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = new_inputs if isinstance(new_inputs, tuple) else (new_inputs,)
    got = session.run(None, {i.name: np.asarray(t.data) for i, t in zip(session.get_inputs(),
                                                                          feeds)})
    model.eval()
    with rg.no_grad():
        expected = _tensors(model(*feeds))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.dtype == e.dtype, (g.shape, g.dtype, e.shape, e.dtype)
        np.testing.assert_allclose(g, e.data, atol=atol, rtol=1e-5)
    return proto


def op_types(proto) -> set:
    return {n.op_type for n in proto.graph.node}


def output_dims(proto) -> list:
    return [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
            for o in proto.graph.output]


@pytest.fixture(autouse=True)
def _seed():
    rg.manual_seed(0)
    np.random.seed(0)


def test_mlp(tmp_path):
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(),
                          nn.Dropout(0.5), nn.Linear(16, 16), nn.Sigmoid(), nn.Linear(16, 3),
                          nn.LogSoftmax(dim=-1))
    model.train()
    proto = roundtrip(model, rg.randn(2, 4), rg.randn(7, 4), tmp_path,
                      input_names=["x"], output_names=["log_probs"])
    assert [i.name for i in proto.graph.input] == ["x"]
    assert [o.name for o in proto.graph.output] == ["log_probs"]
    assert output_dims(proto) == [["batch", 3]]
    assert "Dropout" not in op_types(proto) and "Gemm" in op_types(proto)
    # parameters are initializers named as in state_dict
    assert {"0.weight", "0.bias", "7.weight"} <= {i.name for i in proto.graph.initializer}


def test_export_restores_training_mode():
    model = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.5))
    model.train()
    rg.onnx.export(model, rg.randn(2, 3))
    assert model.training
    model.eval()
    rg.onnx.export(model, rg.randn(2, 3))
    assert not model.training


def test_cnn_conv_batchnorm_pool_flatten_linear():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ELU(), nn.AvgPool2d(2, padding=1,
                                                                        ceil_mode=True),
        nn.ConvTranspose2d(6, 5, 3, stride=2, padding=1, output_padding=1), nn.LeakyReLU(0.1),
        nn.AdaptiveAvgPool2d((3, 2)), nn.Flatten(), nn.Linear(30, 4), nn.Softplus(),
        nn.Softmax(dim=-1))
    bn = model[1]
    bn.running_mean.data[:] = np.random.randn(4)
    bn.running_var.data[:] = np.random.rand(4) + 0.5
    bn.weight.data[:] = np.random.randn(4)
    proto = roundtrip(model, rg.randn(2, 3, 16, 16), rg.randn(5, 3, 16, 16))
    assert {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "Gemm"} <= op_types(proto)
    assert output_dims(proto) == [["batch", 4]]


def test_conv1d_and_global_pooling():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(3, 5, 3, padding="same")
            self.pool = nn.MaxPool1d(2)
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(5, 2)

        def forward(self, x):
            y = self.pool(F.gelu(self.conv(x)))                 # (N, 5, 4)
            return self.fc(self.gap(y.unsqueeze(-1)).flatten(1))

    roundtrip(Net(), rg.randn(2, 3, 8), rg.randn(4, 3, 8))


def test_embedding_layernorm():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 8)
            self.norm = nn.LayerNorm(8)
            self.fc = nn.Linear(8, 3)

        def forward(self, ids):
            return self.fc(self.norm(self.emb(ids)).mean(dim=1)) * 2.0 + 1.0

    model = Net()
    proto = roundtrip(model, rg.randint(0, 10, (2, 5)), rg.randint(0, 10, (6, 5)))
    assert {"Gather", "LayerNormalization"} <= op_types(proto)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    # opsets before 17 have no LayerNormalization: the mean/variance form is exported instead
    proto16 = roundtrip(model, rg.randint(0, 10, (2, 5)), rg.randint(0, 10, (3, 5)),
                        opset_version=16)
    assert "LayerNormalization" not in op_types(proto16)


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
@pytest.mark.parametrize("layers,bidirectional,batch_first", [(1, False, True), (2, True, False)])
def test_recurrent(cls, layers, bidirectional, batch_first):
    model = cls(4, 6, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    axis = 0 if batch_first else 1
    shape = lambda n: (n, 5, 4) if batch_first else (5, n, 4)   # noqa: E731
    proto = roundtrip(model, rg.randn(*shape(2)), rg.randn(*shape(3)),
                      dynamic_axes={"input": {axis: "batch"}})
    assert {"LSTM": "LSTM", "GRU": "GRU", "RNN": "RNN"}[type(model).__name__] in op_types(proto)
    dims = output_dims(proto)
    assert dims[0][axis] == "batch" and dims[1][1] == "batch"      # output and h_n


def test_lstm_dynamic_sequence_length_and_given_state():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 6, batch_first=True)
            self.cell = nn.GRUCell(4, 6)

        def forward(self, x, h0, c0):
            out, (h, c) = self.lstm(x, (h0, c0))
            return out[:, -1] + h[0], self.cell(x[:, 0], c0[0])

    make = lambda n, t: (rg.randn(n, t, 4), rg.randn(1, n, 6), rg.randn(1, n, 6))  # noqa: E731
    roundtrip(Net(), make(2, 5), make(3, 7),
              dynamic_axes={"input0": {0: "batch", 1: "time"}, "input1": {1: "batch"},
                            "input2": {1: "batch"}})


@pytest.mark.parametrize("batch_first,norm_first,activation,opset",
                         [(True, False, "relu", 17), (False, True, "gelu", 17),
                          (True, False, "gelu", 20)])
def test_transformer_encoder_layer(batch_first, norm_first, activation, opset):
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.1,
                                       activation=activation, batch_first=batch_first,
                                       norm_first=norm_first)
    shape = lambda n: (n, 5, 8) if batch_first else (5, n, 8)   # noqa: E731
    axes = {"input": {0 if batch_first else 1: "batch"}}
    proto = roundtrip(layer, rg.randn(*shape(2)), rg.randn(*shape(4)), dynamic_axes=axes,
                      opset_version=opset)
    assert {"Softmax", "LayerNormalization"} <= op_types(proto)


def test_causal_encoder_and_cross_attention_with_weights():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.TransformerEncoder(
                nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True), 2)
            self.cross = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x, memory):
            mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1])
            h = self.enc(x, mask=mask, is_causal=True)
            return self.cross(h, memory, memory)            # (output, averaged weights)

    roundtrip(Net(), (rg.randn(2, 5, 8), rg.randn(2, 3, 8)),
              (rg.randn(3, 5, 8), rg.randn(3, 3, 8)))


def test_functional_ops_and_shapes():
    class Net(nn.Module):
        def forward(self, x):
            a = x.var(dim=1, keepdim=True) + x.max(dim=1)[0].unsqueeze(1) - x.amin(-1,
                                                                                   keepdim=True)
            b = rg.cat([x, x * 2], dim=1).reshape(x.shape[0], 2, -1).permute(0, 2, 1)
            c = rg.stack([x, x.exp()], dim=-1).sum(-1) / 3
            d = rg.pad(x, (1, 2))[:, 1:7].clamp(-0.5, 0.7) ** 2 \
                + rg.where(np.arange(6) % 2 == 0, x, x.abs().log1p())
            e = x[:, 1:3].abs().sqrt().sin() + x[:, -2:].cos() + x[:, None, 0].tanh()
            f = x.unsqueeze(1).expand(-1, 3, -1).tile(1, 2, 1).mean((1, 2)) + x.logsumexp(1)
            g = (x @ rg.ones(6, 2)).sigmoid().double().float() - x.sum()
            q = x.reshape(-1, 2, 3)
            h = F.scaled_dot_product_attention(q, q, q, is_causal=True)
            masks = (x > 0, x <= 0.5, (x == x) & ~(x < -1), (x != 0) | x.isnan(), x.isfinite(),
                     (x > 0).any(1), (x > -3).all(), (x > 0).int().sum(1), (x > 0).sum(),
                     x.sum() * 2.0)
            return (a, b, c, d, e, f, g, h, x.softmax(0), F.elu(-x, 0.5), x.argmax(1),
                    x.argmin(), x.min(0).indices, rg.where(x > 0, x, 0.1 * x), *masks)

    for opset in (17, 18):
        roundtrip(Net(), rg.randn(3, 6), rg.randn(5, 6), opset_version=opset)


def test_reductions_linalg_and_ordering_ops():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(rg.randn(6, 4))
            self.v = nn.Parameter(rg.randn(3))

        def forward(self, x):
            q = x.reshape(-1, 2, 3)
            a = ((x.abs() + 0.5).rsqrt(), x.sign(), (x > 0).sign(), x.prod(1), x.prod(),
                 x.prod(dim=0, keepdim=True))
            b = (x.norm(dim=1), x.norm(1, dim=1, keepdim=True), x.norm(float("inf"), dim=1),
                 x.norm(float("-inf"), dim=0), x.norm(3, dim=(0, 1)), x.norm(0.5, dim=1),
                 x.norm(0, dim=1), x.norm(), q.norm("fro", dim=(1, 2)))
            c = (rg.einsum("bi,ij->bj", x, self.w), rg.einsum("bij,bkj", q, q),
                 rg.einsum("...ij,j->...i", q, self.v), q.bmm(q.permute(0, 2, 1)),
                 x.sum(0).outer(self.v))
            d = (x.cumsum(1), x.cumsum(0), x.cumprod(1), q.cumprod(-1), x.flip(1),
                 x.flip((0, 1)), x.roll(2, 1), x.roll((1, -4), (0, 1)), x.roll(3), x.tril(),
                 q.triu(1), q.tril(-1))
            e = (x.sort(1), x.sort(0, descending=True), x.argsort(-1, descending=True),
                 x.topk(3, 1), x.topk(2, 1, largest=False), x.topk(1, 0), q.sort(1).values)
            return a, b, c, d, e

    model = Net()
    for opset in (13, 17, 18):
        # distinct random values: sort and topk have no ties
        proto = roundtrip(model, rg.randn(3, 6), rg.randn(5, 6), opset_version=opset)
    assert {"Einsum", "TopK", "CumSum", "Trilu", "ReduceL2", "ReduceProd"} <= op_types(proto)


def test_gather_scatter_mask_and_one_hot_ops():
    class Net(nn.Module):
        def forward(self, x):
            order = x.argsort(1)                                # int64, from the input
            down = x.argsort(0)[:2]
            halves = (x > 0).long()                             # 0 or 1: repeated indices
            cols = rg.tensor([[2, 0, 1, 5, 4, 3]])              # a constant, broadcast
            a = (x.gather(1, order[:, :4]), x.gather(0, down), x.take_along_dim(order, 1),
                 x.take_along_dim(cols, 1), x.take_along_dim(rg.tensor([[-1], [0]])[:1], 1),
                 x[:1].take_along_dim(order, 1), x.take_along_dim(order[:, :2]))
            b = (x.index_select(1, rg.tensor([4, 0, 4])), x.index_select(0, rg.tensor(0)),
                 x.index_select(1, order[0]))
            c = (x.masked_fill(x > 0.5, -1.0), x.masked_fill(rg.tensor([True, False] * 3), 2.0),
                 x.masked_fill(x < 0, x.sum()))
            zeros = x * 0
            d = (zeros.scatter(1, order[:, :3], x[:, :3]), x.scatter(1, order, 7.0),
                 zeros.scatter(1, order[:, :2], x), x.scatter_add(1, halves, x * 10),
                 zeros.scatter_add(0, halves[:2], x[:2]))
            e = (F.one_hot(x.argmax(1), 6), F.one_hot(x.argmax(1)),
                 F.one_hot(order.int()[:, 1:], 6))
            return a, b, c, d, e

    proto = roundtrip(Net(), rg.randn(3, 6), rg.randn(5, 6))
    assert {"GatherElements", "Gather", "ScatterElements", "Where", "OneHot"} <= op_types(proto)
    # ScatterElements adds only from opset 16
    with pytest.raises(rg.onnx.UnsupportedOpError, match="ScatterAdd.*opset"):
        rg.onnx.export(Net(), rg.randn(3, 6), opset_version=15)


def test_new_ops_that_cannot_be_exported_say_why():
    with pytest.raises(rg.onnx.UnsupportedOpError, match="CumProd.*dynamic axis"):
        rg.onnx.export(lambda x: (x * 2).cumprod(0), rg.randn(3, 4))
    with pytest.raises(rg.onnx.UnsupportedOpError, match="Roll.*dynamic axis"):
        rg.onnx.export(lambda x: (x * 2).roll(5, 0), rg.randn(3, 4))
    rg.onnx.export(lambda x: (x * 2).cumprod(0), rg.randn(3, 4), dynamic_axes={})
    assert {"Rsqrt", "Sign", "Prod", "Norm", "Einsum", "BMM", "Outer", "Gather", "TakeAlong",
            "IndexSelect", "MaskedFill", "Scatter", "ScatterAdd", "ScatterValue", "OneHot",
            "CumSum", "CumProd", "Flip", "Roll", "Tri", "ArgSort"} <= set(rg.onnx.supported_ops())


def test_static_shapes_and_unbatched_conv():
    conv = nn.Conv2d(3, 4, 3)
    proto = roundtrip(conv, rg.randn(3, 8, 8), rg.randn(3, 8, 8), dynamic_axes={})
    assert output_dims(proto) == [[4, 6, 6]]


def test_unsupported_op_names_the_op_class():
    class Cube(rg.Function):
        @staticmethod
        def forward(ctx, x):
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            raise NotImplementedError

    lin = nn.Linear(3, 3)
    with pytest.raises(rg.onnx.UnsupportedOpError, match="Cube"):
        rg.onnx.export(lambda x: Cube.apply(lin(x)), rg.randn(2, 3))
    with pytest.raises(rg.onnx.UnsupportedOpError, match="AdvancedIndex"):
        rg.onnx.export(lambda x: lin(x)[:, [0, 2]], rg.randn(2, 3))


def test_values_computed_outside_the_graph_are_refused_when_they_follow_the_batch():
    mha = nn.MultiheadAttention(4, 2, batch_first=True)

    def model(x):            # the padding mask goes through NumPy: a constant of the trace
        return mha(x, x, x, key_padding_mask=x.data[..., 0] > 10)[0]

    with pytest.raises(rg.onnx.UnsupportedOpError, match="dynamic axis"):
        rg.onnx.export(model, rg.randn(2, 3, 4))
    rg.onnx.export(model, rg.randn(2, 3, 4), dynamic_axes={})      # fine with fixed shapes


def test_bad_opset_and_missing_onnx(monkeypatch):
    with pytest.raises(ValueError, match="opset_version"):
        rg.onnx.export(nn.Linear(2, 2), rg.randn(1, 2), opset_version=9)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install 'retrograd\[onnx\]'"):
        rg.onnx.export(nn.Linear(2, 2), rg.randn(1, 2))


def test_import_retrograd_does_not_import_onnx():
    code = "import sys, retrograd; assert 'onnx' not in sys.modules; retrograd.onnx.export"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_supported_ops_lists_the_layers_ops():
    ops = rg.onnx.supported_ops()
    for name in ("Linear", "Conv", "ConvTranspose", "MaxPool", "AvgPool", "AdaptiveAvgPool",
                 "_Normalize", "EmbeddingLookup", "LSTMLayer", "GRULayer",
                 "MultiheadAttentionCore", "Softmax", "LogSoftmax", "GELU", "Reshape"):
        assert name in ops
