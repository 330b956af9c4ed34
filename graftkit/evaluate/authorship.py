"""Authorship test: would a style classifier believe the person wrote this?

A logistic regression on TF-IDF character n-grams (`char_wb`, 2-4, case kept because casing is a
habit) is fitted on the TRAIN split to tell the person's turns (assistant) from their partners'
turns (user). It is then applied to held-out real replies (the ceiling: how often the person's own
unseen messages are recognised), held-out partner messages (the floor: how often someone else is
mistaken for the person) and to generated replies. A generated reply counts as "attributed to the
person" when P(person) > 0.5.

A two-class style classifier has to put text unlike both classes somewhere, and on real chats it
often puts it on the person's side (lower case, typos and short fragments are what set a person's
messages apart from partners'). So the report adds a nonsense control: the person's real replies
with their letters shuffled (`scramble`: same characters, casing, punctuation and word lengths, no
words). A model whose share is not clearly above the control's is not shown to sound like the
person, only to produce text the classifier cannot place; read its examples.
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


def scramble(text: str, rng: random.Random) -> str:
    """`text` with its non-space characters shuffled; every whitespace character stays where it is."""
    chars = [c for c in text if not c.isspace()]
    rng.shuffle(chars)
    it = iter(chars)
    return "".join(c if c.isspace() else next(it) for c in text)


@dataclass
class AuthorshipResult:
    mean_p_person: float
    attributed_share: float  # share with P(person) > 0.5
    n: int

    def to_dict(self) -> dict:
        return {"attributed_share": self.attributed_share, "mean_p_person": self.mean_p_person, "n": self.n}


class AuthorshipClassifier:
    """TF-IDF char n-grams + logistic regression; `fit` then `p_person` / `score`."""

    def __init__(self, seed: int = 0, max_per_class: int = DEFAULT_MAX_PER_CLASS):
        self.seed = seed
        self.max_per_class = max_per_class
        self.n_train: dict[str, int] = {}
        self._pipe = None

    def fit(self, person: Sequence[str], partners: Sequence[str]) -> "AuthorshipClassifier":
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
        self.n_train = {"person": len(person), "partners": len(partners)}
        self._pipe = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), lowercase=False, sublinear_tf=True,
                            min_df=1, max_features=200_000),
            LogisticRegression(max_iter=2000, class_weight="balanced", random_state=self.seed),
        )
        self._pipe.fit(list(person) + list(partners), [1] * len(person) + [0] * len(partners))
        return self

    def p_person(self, texts: Sequence[str]) -> np.ndarray:
        """P(the person wrote it) for each text."""
        if self._pipe is None:
            raise RuntimeError("fit() the classifier first")
        if not texts:
            return np.zeros(0)
        return self._pipe.predict_proba(list(texts))[:, 1]

    def score(self, texts: Sequence[str]) -> AuthorshipResult:
        p = self.p_person(texts)
        if len(p) == 0:
            return AuthorshipResult(0.0, 0.0, 0)
        return AuthorshipResult(float(p.mean()), float((p > 0.5).mean()), int(len(p)))

    def auc(self, person: Sequence[str], partners: Sequence[str]) -> float:
        """ROC AUC on held-out person vs partner texts (how well it separates them at all)."""
        from sklearn.metrics import roc_auc_score

        if not person or not partners:
            return float("nan")
        p = self.p_person(list(person) + list(partners))
        return float(roc_auc_score([1] * len(person) + [0] * len(partners), p))
