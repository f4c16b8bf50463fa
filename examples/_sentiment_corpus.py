"""A labelled sentiment corpus made up on the spot (seeded), so the sentiment example needs no
download.

Film-review sentences are composed from sentiment words (positive or negative), intensifiers that
leave the label alone ("very", "extremely"), negations that flip it ("not", "never", "i would not
say that ..."), neutral filler phrases that put distance between a negation and the word it
flips, and contrasts whose clauses disagree ("X but Y" and "although X , Y" mean Y;
"X , even though Y" means X). The label is a function of the words: no noise, so a model that
reads the structure right can reach 100%.

A third of clauses are negated. (With half, the last sentiment word says nothing about the label
on its own, no single word does, and training sat at chance for hundreds of steps.)

>>> corpus = make_corpus(1000, seed=0)
>>> corpus.sentences[5], corpus.labels[5], corpus.negated[5]
('as a whole , the dialogue is not , in the middle of the week , remarkably clever', 0, True)
"""
from dataclasses import dataclass

import numpy as np

POSITIVE = ("good great excellent wonderful brilliant delightful superb charming enjoyable "
            "gripping moving clever funny beautiful fresh").split()
NEGATIVE = ("bad awful terrible boring dull tedious dreadful clumsy bland weak predictable messy "
            "shallow silly lifeless").split()
INTENSIFIERS = "very extremely truly really remarkably incredibly rather quite".split()
NEGATIONS = "not never hardly".split()                     # inside a clause: "was not very good"
NEGATING_PREFIXES = ("i would not say that", "i would never say that", "it is not true that",
                     "no one could claim that", "i do not think that")
SUBJECTS = ("the film", "the movie", "the plot", "the story", "the acting", "the script",
            "the ending", "the soundtrack", "the dialogue", "the cast", "the camera work",
            "the pacing", "the second half", "the lead actor")
VERBS = "was is felt seemed looked sounded".split()
OPENERS = ("", "", "", "honestly ,", "after seeing it twice ,", "to be fair ,", "overall ,",
           "in short ,", "as a whole ,")
FILLERS = ("as far as i could tell", "for most of its two hours", "if you ask me",
           "from the opening scene to the final credits", "at least on the big screen",
           "despite the huge budget", "in the version that i saw", "by the standards of the genre",
           "for a story set in a small town", "to my friends and me", "on the whole",
           "all things considered", "with the sound turned up", "like the book it is based on",
           "in the middle of the week")      # neutral asides, put between commas
PAD, STOP = "<pad>", "."                 # id 0 pads a batch; "." ends a sentence in a document


@dataclass
class Corpus:
    sentences: list        # str, tokens separated by spaces
    labels: np.ndarray     # 1 positive, 0 negative
    negated: np.ndarray    # True where the clause that decides the label is negated
    contrast: np.ndarray   # True for two-clause sentences ("but", "although", "even though")


def vocabulary():
    """Every token the generator can emit, in a fixed order; PAD is id 0 and STOP id 1."""
    words = set(POSITIVE + NEGATIVE + INTENSIFIERS + NEGATIONS + VERBS + ["but", "although",
                                                                        "even", "though"])
    for phrase in NEGATING_PREFIXES + SUBJECTS + OPENERS + FILLERS:
        words.update(phrase.split())
    return [PAD, STOP] + sorted(words - {STOP})


def _clause(rng, max_fillers):
    """One clause and its meaning: (tokens, label, negated). The negation, if any, comes first
    (in a prefix) or straight after the verb, and the fillers sit between it and the sentiment."""
    positive = rng.random() < 0.5
    adjective = rng.choice(POSITIVE if positive else NEGATIVE)
    intensifier = [rng.choice(INTENSIFIERS)] if rng.random() < 0.4 else []
    asides = [rng.choice(FILLERS) for _ in range(rng.integers(0, max_fillers + 1))]
    fillers = (", " + " , ".join(asides) + " ,").split() if asides else []
    form = rng.random()       # plain, negated after the verb, or negated by a prefix
    prefix, negation = [], []
    if form < 0.2:
        negation = [rng.choice(NEGATIONS)]
    elif form < 0.33:
        prefix = rng.choice(NEGATING_PREFIXES).split()
    negated = bool(prefix or negation)
    verb = rng.choice(VERBS[:2] if negation else VERBS)     # "was never", not "seemed never"
    tokens = (prefix + rng.choice(SUBJECTS).split() + [verb] + negation + fillers
              + intensifier + [adjective])
    return tokens, int(positive != negated), negated


def sentence(rng, max_fillers=3):
    """A random sentence: (text, label, negated, contrast)."""
    opener = rng.choice(OPENERS).split()
    first, label, negated = _clause(rng, max_fillers)
    kind = rng.random()
    if kind < 0.45:                                       # one clause
        return " ".join(opener + first), label, negated, False
    second, label2, negated2 = _clause(rng, max_fillers)
    if kind < 0.65:                                       # "X but Y": Y decides
        tokens, label, negated = first + [",", "but"] + second, label2, negated2
    elif kind < 0.8:                                      # "although X , Y": Y decides
        tokens, label, negated = ["although"] + first + [","] + second, label2, negated2
    else:                                                 # "X , even though Y": X decides
        tokens = first + [",", "even", "though"] + second
    return " ".join(opener + tokens), label, negated, True


def make_corpus(n, seed=0, max_fillers=3, exclude=()):
    """`n` distinct sentences drawn with `seed`, none of them in `exclude` (e.g. the training set,
    to make a held-out set)."""
    rng = np.random.default_rng(seed)
    seen, rows = set(exclude), []
    while len(rows) < n:
        row = sentence(rng, max_fillers)
        if row[0] not in seen:
            seen.add(row[0])
            rows.append(row)
    text, labels, negated, contrast = zip(*rows)
    return Corpus(list(text), np.array(labels), np.array(negated), np.array(contrast))


def make_documents(n_docs, length, seed=0, max_fillers=3):
    """Reviews of exactly `length` tokens, sentences ended by ".": token strings (n_docs, length)
    as lists, and targets (n_docs, length): the sentence's label at each ".", -100 elsewhere
    (cross_entropy's ignore_index). A sentence cut by the end of the document has no target."""
    rng = np.random.default_rng(seed)
    docs, targets = [], np.full((n_docs, length), -100)
    for d in range(n_docs):
        tokens = []
        while len(tokens) < length:
            text, label, _, _ = sentence(rng, max_fillers)
            tokens += text.split() + [STOP]
            if len(tokens) <= length:
                targets[d, len(tokens) - 1] = label
        docs.append(tokens[:length])
    return docs, targets
