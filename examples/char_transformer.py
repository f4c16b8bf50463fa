"""A character-level Transformer language model: it reads text one character at a time and learns
to predict the next one, then writes text of its own.

The model is a small GPT: token embedding + learned (or sinusoidal) position embedding, a stack of
pre-LN Transformer encoder layers made causal (position t attends to positions <= t only, with
`nn.Transformer.generate_square_subsequent_mask`), a final LayerNorm and a linear read-out to one
score per character. Training minimises the cross-entropy of the next character at every
position of random windows of the text, with AdamW, a short warm-up and a cosine decay.

The text is Python's own help pages (`pydoc_data.topics`, shipped with Python: ~465k characters),
or any file with `--text FILE`. The last 10% is held out; we report bits per character (bpc,
the cross-entropy in bits: lower is better) there, against a unigram model that knows only how
often each character occurs. Samples use a temperature (below 1: safer, above: wilder) and top-k
(draw only among the k likeliest characters).

Music: no melody corpus ships with Python or the packages this project installs, but the
`music21` package on PyPI (a 20 MB wheel) bundles its corpus, among it the Essen folk-song
collection in ABC notation, which is plain text ("K: G\\nG2 | _B2B2c2c2 | d4d4"). With
`pip install music21`, `--abc` trains on its 8,514 tunes (1.7M characters once the comment lines
are dropped; read as text, music21 is not imported) and samples new ones: after 400 steps at
d_model 128 and context 128, 2.11 bits per character (unigram: 4.73), and samples with headers
(X:, T:, M:, L:, K:), bar lines and phrases of notes in the key.

Measured with the defaults (250k parameters, 2,000 steps of 32 windows of 64 characters): held-out
1.77 bits per character against the unigram model's 4.67, and samples such as
    'Each as the "__getattr__()" methods *width* arguments "absexec()".  An and the string
    condition of the subject where to the same inheritanting and arguments.'

Run:  python examples/char_transformer.py            (about 2 minutes on 2 cores)
      python examples/char_transformer.py --text book.txt --steps 2000
"""
import argparse
import glob
import importlib.util
import math
import os
import re
import time

import numpy as np

import retrograd as rg
from retrograd import nn, optim
from retrograd.nn import functional as F


def load_text(path=None, abc=False):
    """The training text and a name for it: a file, music21's ABC folk songs, or pydoc's topics."""
    if path:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(), os.path.basename(path)
    if abc:
        spec = importlib.util.find_spec("music21")
        if spec is None:
            raise SystemExit("--abc needs the music21 package (pip install music21), whose "
                             "corpus holds the folk songs")
        folder = os.path.join(os.path.dirname(spec.origin), "corpus", "essenFolksong")
        return abc_tunes(sorted(glob.glob(os.path.join(folder, "*.abc")))), "music21 folk songs"
    from pydoc_data.topics import topics
    return "\n".join(topics[k] for k in sorted(topics)), "pydoc_data.topics"


def abc_tunes(paths):
    """ABC files as one text, each tune kept to its key fields and notes (no comments, sources)."""
    keep = ("X:", "T:", "M:", "L:", "K:")
    lines = []
    for p in paths:
        with open(p, encoding="latin-1") as f:
            for line in f:
                if line[1:2] != ":" or line.startswith(keep):
                    lines.append(line.rstrip() + "\n")
    return "".join(lines)


class CharTransformer(nn.Module):
    """Character ids (batch, seq) -> next-character scores (batch, seq, vocab), seq <= context."""

    def __init__(self, vocab_size, d_model=96, nhead=4, num_layers=2, context=64,
                 dropout=0.0, positions="learned"):
        super().__init__()
        self.context = context
        self.token = nn.Embedding(vocab_size, d_model)
        if positions == "learned":
            self.position = nn.LearnedPositionalEncoding(context, d_model, batch_first=True)
        else:
            self.position = nn.SinusoidalPositionalEncoding(d_model, context, dropout=0.0,
                                                            batch_first=True)
        # Pre-LN (norm_first) trains stably without a long warm-up. ReLU, not GPT's GELU: here
        # GELU's forward and backward cost 25x (exact, erf) to 50x (tanh form) ReLU's, and
        # make a training step 2x (exact) to 4x (tanh form) as long (measured).
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=4 * d_model,
                                           dropout=dropout, activation="relu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model))
        self.head = nn.Linear(d_model, vocab_size)
        # Small embeddings, as GPT-2 (N(0, 0.02)), so they do not drown the blocks' outputs.
        for p in self.token.parameters():
            nn.init.normal_(p, std=0.02)
        for p in self.position.parameters():
            nn.init.normal_(p, std=0.02)
        self._masks = {}

    def forward(self, ids):
        length = ids.shape[1]
        if length not in self._masks:       # 0 on and below the diagonal, -inf above
            self._masks[length] = nn.Transformer.generate_square_subsequent_mask(length)
        x = self.position(self.token(ids))
        x = self.encoder(x, mask=self._masks[length], is_causal=True)
        return self.head(x)


def windows(data, starts, context):
    """Inputs (len(starts), context) and targets shifted by one character."""
    index = starts[:, None] + np.arange(context)
    return data[index], data[index + 1]


def bits_per_char(model, data, context, batch_size=32, max_chars=None):
    """Mean cross-entropy in bits of each next character of `data`, read in consecutive
    windows of `context` characters (so the first few of each window see little context)."""
    n = len(data) - 1 if max_chars is None else min(len(data) - 1, max_chars)
    starts = np.arange(0, n - context + 1, context)
    model.eval()
    total, count = 0.0, 0
    with rg.no_grad():
        for s in range(0, len(starts), batch_size):
            x, y = windows(data, starts[s:s + batch_size], context)
            logits = model(rg.tensor(x))
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), rg.tensor(y.reshape(-1)),
                                     reduction="sum").item()
            count += y.size
    model.train()
    return total / count / math.log(2)


def unigram_bits(train, test, vocab_size):
    """Cross-entropy in bits of `test` under the character frequencies of `train` (add-one)."""
    counts = np.bincount(train, minlength=vocab_size) + 1.0
    p = counts / counts.sum()
    return float(-np.log2(p[test]).mean())


def next_logits(model, ids):
    """Scores (vocab,) for the character after `ids`, reading at most the last `context`."""
    with rg.no_grad():
        return model(rg.tensor(np.asarray(ids[-model.context:])[None])).data[0, -1]


def top_k_filter(logits, k):
    """Scores outside the k largest set to -inf (k=None or 0: all kept)."""
    if not k or k >= len(logits):
        return logits
    kth = np.partition(logits, -k)[-k]
    return np.where(logits < kth, -np.inf, logits)


def sample(model, prompt_ids, n, temperature=1.0, top_k=None, rng=None):
    """`n` new character ids after `prompt_ids`, drawn one at a time from
    softmax(top_k(scores) / temperature)."""
    rng = np.random.default_rng(0) if rng is None else rng
    ids = list(prompt_ids)
    model.eval()
    for _ in range(n):
        logits = top_k_filter(next_logits(model, ids).astype(np.float64), top_k) / temperature
        p = np.exp(logits - logits.max())
        ids.append(int(rng.choice(len(p), p=p / p.sum())))
    model.train()
    return ids[len(prompt_ids):]


def main(path=None, text=None, abc=False, d_model=96, nhead=4, num_layers=2, context=64,
         batch_size=32, steps=2000, lr=5e-3, warmup=50, dropout=0.0, positions="learned",
         eval_every=250, eval_chars=None, sample_chars=300, prompt=None,
         sampling=((0.8, 10), (1.0, None)), seed=0, threads=1, progress=True):
    """Train on the file `path`, the string `text`, music21's folk songs (`abc`) or pydoc's
    topics, and return metrics: unigram and held-out bpc (before, during, after training; on the
    first `eval_chars` held-out characters, or all), train losses, samples for each
    (temperature, top_k) in `sampling`, and the model with its alphabet."""
    # Matrices here are a few hundred wide at most: one BLAS thread wastes little, and on a busy
    # machine more threads spin for a core (we measured steps 20x slower with two).
    saved_threads = rg.get_num_threads()
    rg.set_num_threads(threads)
    try:
        return _train(path, text, abc, d_model, nhead, num_layers, context, batch_size, steps,
                      lr, warmup, dropout, positions, eval_every, eval_chars, sample_chars,
                      prompt, sampling, seed, progress)
    finally:
        rg.set_num_threads(saved_threads)


def _train(path, text, abc, d_model, nhead, num_layers, context, batch_size, steps, lr, warmup,
           dropout, positions, eval_every, eval_chars, sample_chars, prompt, sampling, seed,
           progress):
    say = print if progress else (lambda *a, **k: None)
    rg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    text, source = (text, "text") if text is not None else load_text(path, abc)
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    data = np.array([index[c] for c in text], dtype=np.int64)
    split = int(0.9 * len(data))
    train, held_out = data[:split], data[split:]
    vocab = len(chars)
    unigram = unigram_bits(train, held_out, vocab)
    say(f"{source}: {len(text):,} characters, {vocab} distinct; the last {len(held_out):,} held "
        f"out. Unigram model: {unigram:.2f} bits per character")

    model = CharTransformer(vocab, d_model, nhead, num_layers, context, dropout, positions)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.ndim >= 2]        # no weight decay on biases, norms
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = optim.AdamW([{"params": decay, "weight_decay": 0.1},
                       {"params": rest, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98))

    def schedule(step):            # linear warm-up, then cosine decay to a tenth
        if step < warmup:
            return (step + 1) / warmup
        progress_ = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_))
    scheduler = optim.lr_scheduler.LambdaLR(opt, schedule)

    bpc = {0: bits_per_char(model, held_out, context, max_chars=eval_chars)}
    say(f"{n_params:,} parameters; held-out bpc before training {bpc[0]:.2f}")
    losses = []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        x, y = windows(train, rng.integers(0, len(train) - context - 1, batch_size), context)
        logits = model(rg.tensor(x))
        loss = F.cross_entropy(logits.reshape(-1, vocab), rg.tensor(y.reshape(-1)))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        scheduler.step()
        losses.append(loss.item())
        if step % eval_every == 0 or step == steps:
            bpc[step] = bits_per_char(model, held_out, context, max_chars=eval_chars)
            say(f"step {step:5d}  train loss {np.mean(losses[-eval_every:]) / math.log(2):.2f} "
                f"bpc  held-out {bpc[step]:.2f} bpc  ({time.perf_counter() - start:.0f} s)")
    seconds = time.perf_counter() - start
    final = bpc[steps]
    say(f"held-out bits per character: {final:.3f} (unigram {unigram:.3f}); "
        f"{steps} steps in {seconds:.0f} s")

    if prompt is None:          # the start of a held-out line of prose, if there is one
        line = re.search(r"\n[A-Z][a-z]* [a-z]+ [a-z]+ ", text[split:split + 10000])
        at = split + (line.start() + 1 if line else 0)
        prompt = text[at:at + 30]
    prompt_ids = [index[c] for c in prompt if c in index]
    samples = {}
    for temperature, top_k in sampling:
        ids = sample(model, prompt_ids, sample_chars, temperature, top_k,
                     np.random.default_rng(seed))
        samples[(temperature, top_k)] = "".join(chars[i] for i in ids)
        say(f"\n--- sample, temperature {temperature}, top-k {top_k}; prompt {prompt!r}:\n"
            f"{prompt}{samples[(temperature, top_k)]}")
    return {"model": model, "chars": chars, "unigram_bpc": unigram, "bpc": final,
            "bpc_curve": bpc, "losses": losses, "samples": samples, "seconds": seconds,
            "parameters": n_params}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", help="train on this text file (default: pydoc's help topics)")
    parser.add_argument("--abc", action="store_true",
                        help="train on music21's folk songs in ABC notation (needs music21)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--d-model", type=int, default=96)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--positions", choices=["learned", "sinusoidal"], default="learned")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=10, help="0: sample from all characters")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(path=args.text, abc=args.abc, d_model=args.d_model, nhead=args.heads,
         num_layers=args.layers, context=args.context, batch_size=args.batch_size,
         steps=args.steps, lr=args.lr, positions=args.positions,
         sampling=((args.temperature, args.top_k), (1.0, None)), seed=args.seed,
         threads=args.threads)
