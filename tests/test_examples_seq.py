"""The sequence examples teach what they claim: recurrent nets read negations, truncated BPTT cuts
the graph at each chunk, 1,000-step sequences train, a character Transformer beats a unigram model
and top-k sampling stays in the top k. Each runs at a reduced size."""
import inspect
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import retrograd as rg
from retrograd import optim

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))

import char_transformer  # noqa: E402
import sentiment_lstm  # noqa: E402
from _sentiment_corpus import (POSITIVE, STOP, make_corpus, make_documents,  # noqa: E402
                               vocabulary)

INDEX = {w: i for i, w in enumerate(vocabulary())}


def count_nodes(tensor, name):
    """How many graph nodes called `name` (e.g. "LSTMLayer") lie behind `tensor`."""
    count, seen, stack = 0, set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or isinstance(node, rg.Tensor) or id(node) in seen:
            continue
        seen.add(id(node))
        count += type(node).__name__ == name
        stack.extend(node.next_functions or ())
    return count


# -- the corpus --------------------------------------------------------------------------------

def test_corpus_is_seeded_balanced_and_its_labels_follow_the_words():
    a, b = make_corpus(500, seed=3), make_corpus(500, seed=3)
    assert a.sentences == b.sentences and (a.labels == b.labels).all()
    assert 0.4 < a.labels.mean() < 0.6
    assert 0.2 < a.negated.mean() < 0.45 and 0.4 < a.contrast.mean() < 0.7
    held_out = make_corpus(200, seed=4, exclude=set(a.sentences))
    assert not set(held_out.sentences) & set(a.sentences)
    for text, label, negated, contrast in zip(a.sentences, a.labels, a.negated, a.contrast):
        if not contrast and not negated:          # one plain clause: its adjective decides
            assert label == (text.split()[-1] in POSITIVE), text
    docs, targets = make_documents(3, 120, seed=0)
    for doc, target in zip(docs, targets):
        assert len(doc) == 120
        stops = [t for t, w in enumerate(doc) if w == STOP]
        assert list(np.flatnonzero(target >= 0)) == stops      # a label at each "."


# -- recurrent classifiers ---------------------------------------------------------------------

@pytest.mark.slow
def test_lstm_and_gru_learn_sentiment_including_negations_and_truncated_bptt_reads_documents(
        capsys):
    # 630 steps per classifier (the full example runs 1,250 and reaches 100%); measured here:
    # LSTM and GRU 0.89 (negations 0.88 and 0.89); documents 0.84, cut sentences 0.83 with the
    # state carried and 0.68 with it reset.
    results = sentiment_lstm.main(n_train=4000, n_test=600, epochs=10, n_docs=96, doc_len=200,
                                  chunk=50, doc_epochs=2, long_length=0, seed=0)
    for r in (results["lstm"], results["gru"]):
        assert r["accuracy"] >= 0.75                     # chance is 0.5
        assert r["negation_accuracy"] >= 0.65            # the last sentiment word misleads here
        assert np.mean(r["train_loss"][-30:]) < 0.7 * np.mean(r["train_loss"][:30])
        assert all(np.isfinite(r["grad_norms"]))
    out = capsys.readouterr().out
    assert "grad norm" in out and "negations" in out     # the pre-clip norm is reported

    tbptt = results["tbptt"]
    assert tbptt["steps"] == 2 * 3 * 4                   # 2 epochs, 3 batches, 4 chunks each
    assert tbptt["accuracy_carried"] >= 0.75
    assert 0.2 < tbptt["cut_fraction"] < 0.8
    # Sentences begun in the previous chunk: a reset state has forgotten their start.
    assert tbptt["cut_accuracy_carried"] > tbptt["cut_accuracy_reset"] + 0.05


def test_padding_does_not_change_a_sentence_score():
    rg.manual_seed(0)
    model = sentiment_lstm.SentimentRNN(len(INDEX), "gru")
    ids, lengths = sentiment_lstm.encode(["the film was good", "the plot was not , "
                                          "if you ask me , very dull"], INDEX)
    alone, _ = sentiment_lstm.encode(["the film was good"], INDEX)
    with rg.no_grad():
        padded = model(rg.tensor(ids), lengths).data[0]
        unpadded = model(rg.tensor(alone), lengths[:1]).data[0]
    assert ids.shape[1] > alone.shape[1]
    np.testing.assert_allclose(padded, unpadded, rtol=1e-5, atol=1e-6)


# -- truncated BPTT ----------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_truncated_bptt_carries_the_state_but_not_its_history(cell):
    rg.manual_seed(0)
    model = sentiment_lstm.SentimentRNN(len(INDEX), cell, embed=8, hidden=16)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    docs, targets = make_documents(4, 90, seed=0)
    ids = sentiment_lstm.encode_documents(docs, INDEX)
    layer = "LSTMLayer" if cell == "lstm" else "GRULayer"

    state, chunk, losses = None, 30, []
    for s in range(0, 90, chunk):
        loss, state, attached = sentiment_lstm.tbptt_step(model, opt, ids[:, s:s + chunk],
                                                          targets[:, s:s + chunk], state, 1.0)
        losses.append(loss)
        for carried in (state if cell == "lstm" else (state,)):
            assert carried.grad_fn is None and not carried.requires_grad
            assert np.abs(carried.data).max() > 0            # it does carry something
    assert np.isfinite(losses).all()

    # The graph of a chunk that starts from a detached state holds one recurrent node; without
    # detach it reaches back into the previous chunk's.
    first, first_state = model.tag(rg.tensor(ids[:, :chunk]))
    _, detached = model.tag(rg.tensor(ids[:, chunk:2 * chunk]),
                            sentiment_lstm.detach(first_state))
    _, attached = model.tag(rg.tensor(ids[:, chunk:2 * chunk]), first_state)
    h = (lambda st: st[0]) if cell == "lstm" else (lambda st: st)
    assert count_nodes(h(detached), layer) == 1
    assert count_nodes(h(attached), layer) == 2
    # ... and carrying the state changes what the second chunk computes.
    reset, _ = model.tag(rg.tensor(ids[:, chunk:2 * chunk]))
    carried, _ = model.tag(rg.tensor(ids[:, chunk:2 * chunk]), sentiment_lstm.detach(first_state))
    assert not np.allclose(reset.data[:, 0], carried.data[:, 0])


def test_crosses_boundary_marks_sentences_that_began_in_an_earlier_chunk():
    stop = INDEX[STOP]
    ids = np.array([[5, stop, 5, 5, 5, stop, 5, stop]])
    targets = np.where(ids == stop, 1, -100)
    cut = sentiment_lstm.crosses_boundary(ids, targets, 4, stop)
    assert cut.tolist() == [[False, False, False, False, False, True, False, False]]


# -- long sequences ----------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_1000_step_sequence_trains_without_recursion_or_memory_blow_up(cell):
    depth = len(inspect.stack(0))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 150)   # a recursive graph walk over 1,000 steps would fail
    try:
        steps = {}
        for length in (100, 1000):
            rg.manual_seed(0)
            model = sentiment_lstm.SentimentRNN(len(INDEX), cell)
            steps[length] = sentiment_lstm.long_sequence_step(model, INDEX, length)
    finally:
        sys.setrecursionlimit(limit)
    long = steps[1000]
    assert long["grads_finite"] and long["grad_norm"] > 0
    assert long["loss_after"] < long["loss_before"]
    # activations grow linearly with the length: 10x the steps, not 100x the memory
    assert long["peak_mb"] < 12 * steps[100]["peak_mb"]
    assert long["peak_mb"] < 200


# -- character Transformer ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def char_model():
    # 150 steps of 32 x 32 characters: measured held-out bpc 4.01 after 75, 3.75 after 150
    return char_transformer.main(d_model=64, nhead=4, num_layers=2, context=32, batch_size=32,
                                 steps=150, lr=1e-2, warmup=10, eval_every=75, eval_chars=6000,
                                 sample_chars=40, progress=False)


def test_char_transformer_beats_the_unigram_model(char_model):
    r = char_model
    assert 4.0 < r["unigram_bpc"] < 5.0                   # English-like text, ~100 symbols
    curve = r["bpc_curve"]
    assert curve[150] < curve[75] < curve[0]
    assert r["bpc"] < r["unigram_bpc"] - 0.5              # it uses the context
    assert np.mean(r["losses"][-10:]) < 0.75 * np.mean(r["losses"][:10])
    for text in r["samples"].values():
        assert len(text) == 40 and set(text) <= set(r["chars"])


def test_top_k_sampling_draws_only_from_the_k_likeliest(char_model):
    model, chars = char_model["model"], char_model["chars"]
    index = {c: i for i, c in enumerate(chars)}
    prompt = [index[c] for c in "def main("]
    for k in (1, 3):
        drawn = char_transformer.sample(model, prompt, 25, temperature=1.5, top_k=k,
                                        rng=np.random.default_rng(k))
        ids = list(prompt)
        for token in drawn:
            logits = char_transformer.next_logits(model, ids)
            assert token in np.argsort(logits)[-k:]
            ids.append(token)
    # without top-k, a hot temperature strays outside the top 3 at least once
    ids = list(prompt)
    drawn = char_transformer.sample(model, prompt, 40, temperature=2.0,
                                    rng=np.random.default_rng(0))
    outside = 0
    for token in drawn:
        outside += token not in np.argsort(char_transformer.next_logits(model, ids))[-3:]
        ids.append(token)
    assert outside > 0


def test_top_k_filter_keeps_the_k_largest():
    logits = np.array([0.1, 3.0, -1.0, 2.0, 0.5])
    kept = char_transformer.top_k_filter(logits, 2)
    assert np.isfinite(kept).tolist() == [False, True, False, True, False]
    assert (char_transformer.top_k_filter(logits, None) == logits).all()


def test_causal_model_ignores_the_future():
    rg.manual_seed(0)
    model = char_transformer.CharTransformer(10, d_model=16, nhead=2, num_layers=2, context=8)
    a = np.array([[1, 2, 3, 4, 5, 6]])
    b = a.copy()
    b[0, 4:] = [9, 0]
    with rg.no_grad():
        out_a, out_b = model(rg.tensor(a)).data, model(rg.tensor(b)).data
    np.testing.assert_allclose(out_a[0, :4], out_b[0, :4], rtol=1e-5, atol=1e-6)
    assert not np.allclose(out_a[0, 4:], out_b[0, 4:])


def test_char_transformer_script_reads_a_text_file(tmp_path):
    text = tmp_path / "tiny.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    out = subprocess.run([sys.executable, str(EXAMPLES / "char_transformer.py"), "--text",
                          str(text), "--steps", "3", "--d-model", "16", "--context", "16",
                          "--heads", "2", "--positions", "sinusoidal", "--top-k", "2"],
                         cwd=tmp_path, capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT))).stdout
    assert "tiny.txt: 1,800 characters, 28 distinct" in out
    assert "held-out bits per character" in out and "top-k 2" in out
