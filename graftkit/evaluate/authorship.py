"""Authorship test: would a style classifier believe the person wrote this?

A logistic regression on TF-IDF character n-grams (`char_wb`, 2-4, case kept because casing is a
habit) is fitted on the TRAIN split to tell the person's turns (assistant) from their partners'
turns (user). It is then applied to held-out real replies (the ceiling: how often the person's own
unseen messages are recognised), held-out partner messages (the floor: how often someone else is
mistaken for the person) and to generated replies. A generated reply counts as "attributed to the
person" when P(person) > 0.5.

A two-class style classifier has to put text unlike both classes somewhere, and on real chats it
often puts it on the person's side (lower case, typos and short fragments are what set a person's
messages apart from partners'): random letters got 71 % "person". So the evaluation fits it with a
third class, *junk*: training messages of both sides with their letters shuffled (`scramble`: same
characters, casing, punctuation and word lengths, no words) and word salad (`word_salad`: real
words of the training split in random order). A text is attributed to the person only when the
person is the most likely of the three classes, so gibberish lands in junk instead. What
remains gameable is parroting (the person's own training messages are what the classifier was
fitted on); the report shows a parrot baseline for that, and context fit (response selection)
is what a parrot fails.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..samples import Conversation

DEFAULT_MAX_PER_CLASS = 20000


def person_and_partner_texts(convs: Sequence[Conversation]) -> tuple[list[str], list[str]]:
    """(assistant turn texts, user turn texts) of a list of conversations; system turns are ignored."""
    me = [t["content"] for c in convs for t in c if t["role"] == "assistant" and t["content"].strip()]
    them = [t["content"] for c in convs for t in c if t["role"] == "user" and t["content"].strip()]
    return me, them


def word_salad(texts: Sequence[str], rng: random.Random, n: int) -> list[str]:
    """n texts of real words from `texts` in random order (word frequencies kept, lengths drawn from
    the texts' own lengths): language-like on the surface, meaningless as a message."""
    words = [w for t in texts for w in t.split()]
    lengths = [len(t.split()) for t in texts if t.split()]
    if not words:
        return []
    return [" ".join(rng.choice(words) for _ in range(rng.choice(lengths))) for _ in range(n)]


def junk_texts(person: Sequence[str], partners: Sequence[str], rng: random.Random, n: int) -> list[str]:
    """The junk class: half letter-shuffled messages (of both sides), half word salad."""
    both = list(person) + list(partners)
    if not both:
        return []
    shuffled = [scramble(rng.choice(both), rng) for _ in range(n - n // 2)]
    return shuffled + word_salad(both, rng, n // 2)


def scramble(text: str, rng: random.Random) -> str:
    """`text` with its non-space characters shuffled; every whitespace character stays where it is."""
    chars = [c for c in text if not c.isspace()]
    rng.shuffle(chars)
    it = iter(chars)
    return "".join(c if c.isspace() else next(it) for c in text)


@dataclass
class AuthorshipResult:
    mean_p_person: float
    attributed_share: float  # share where the person is the most likely class (P > 0.5 with two classes)
    n: int
    junk_share: float = 0.0  # share put in the junk class (three-class classifier only)

    def to_dict(self) -> dict:
        return {"attributed_share": self.attributed_share, "mean_p_person": self.mean_p_person, "n": self.n,
                "junk_share": self.junk_share}


class AuthorshipClassifier:
    """TF-IDF char n-grams + logistic regression; `fit` then `p_person` / `score`.

    Classes: 0 = partners, 1 = person, and 2 = junk when `fit` gets junk texts."""

    def __init__(self, seed: int = 0, max_per_class: int = DEFAULT_MAX_PER_CLASS):
        self.seed = seed
        self.max_per_class = max_per_class
        self.n_train: dict[str, int] = {}
        self._pipe = None

    def fit(self, person: Sequence[str], partners: Sequence[str],
            junk: Sequence[str] = ()) -> "AuthorshipClassifier":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        if not person or not partners:
            raise InputError("authorship test needs both the person's (assistant) and partners' (user) turns "
                             "in the train split")
        rng = random.Random(self.seed)
        person = list(person) if len(person) <= self.max_per_class else rng.sample(list(person), self.max_per_class)
        partners = (list(partners) if len(partners) <= self.max_per_class
                    else rng.sample(list(partners), self.max_per_class))
        junk = list(junk)[: self.max_per_class]
        self.n_train = {"person": len(person), "partners": len(partners), "junk": len(junk)}
        # n-grams seen in one training message only say nothing about a habit and cost fit time: with
        # enough messages keep those seen twice, at most 50k (on the sample: fit 11.4 -> 7.6 CPU s, held-out
        # AUC 0.791 either way)
        n_docs = len(person) + len(partners) + len(junk)
        self._pipe = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), lowercase=False, sublinear_tf=True,
                            min_df=2 if n_docs >= 1000 else 1, max_features=50_000),
            LogisticRegression(max_iter=2000, class_weight="balanced", random_state=self.seed),
        )
        self._pipe.fit(list(person) + list(partners) + junk,
                       [1] * len(person) + [0] * len(partners) + [2] * len(junk))
        return self

    def proba(self, texts: Sequence[str]) -> np.ndarray:
        """[n, classes] probabilities, columns 0 = partners, 1 = person (, 2 = junk)."""
        if self._pipe is None:
            raise RuntimeError("fit() the classifier first")
        return self._pipe.predict_proba(list(texts))

    def attributed(self, texts: Sequence[str]) -> np.ndarray:
        """1.0 where the person is the most likely class, else 0.0."""
        if not texts:
            return np.zeros(0)
        return (self.proba(texts).argmax(axis=1) == 1).astype(float)

    def p_person(self, texts: Sequence[str]) -> np.ndarray:
        """P(the person wrote it) for each text."""
        if not texts:
            return np.zeros(0)
        return self.proba(texts)[:, 1]

    def score(self, texts: Sequence[str]) -> AuthorshipResult:
        if not texts:
            return AuthorshipResult(0.0, 0.0, 0)
        p = self.proba(texts)
        top = p.argmax(axis=1)
        junk = float((top == 2).mean()) if p.shape[1] > 2 else 0.0
        return AuthorshipResult(float(p[:, 1].mean()), float((top == 1).mean()), int(len(p)), junk)

    def person_vs_partners(self, texts: Sequence[str]) -> np.ndarray:
        """P(person) / (P(person) + P(partners)) per text: the person against partners, junk left out."""
        if not texts:
            return np.zeros(0)
        p = self.proba(texts)
        return p[:, 1] / np.maximum(p[:, 0] + p[:, 1], 1e-12)

    def auc(self, person: Sequence[str], partners: Sequence[str]) -> float:
        """ROC AUC on held-out person vs partner texts (how well it separates them at all)."""
        from .stats import auc

        if not person or not partners:
            return float("nan")
        return auc(self.person_vs_partners(person), self.person_vs_partners(partners))
