"""Text for the sequence networks: word and character tokenizers and a vocabulary of token ids.

The vocabulary is built on the training texts only; id 0 pads, id 1 stands for every token the
training texts did not have (or that fell under min_frequency / outside max_size). It saves as JSON.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from forgeml.errors import DataError

PAD, UNK = 0, 1
PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"
TOKENIZERS = ("word", "char")
_WORD = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str, tokenizer: str = "word", *, lowercase: bool = True) -> list[str]:
    """Split one text: "word" gives words and punctuation marks, "char" gives characters."""
    if tokenizer not in TOKENIZERS:
        raise DataError(f"unknown tokenizer '{tokenizer}' (known: {', '.join(TOKENIZERS)})")
    if lowercase:
        text = text.lower()
    return _WORD.findall(text) if tokenizer == "word" else list(text)


def as_texts(texts: Any, what: str = "text column") -> list[str]:
    """A list of str from a Series, array, list or one-column frame; missing values become ''."""
    if isinstance(texts, pd.DataFrame):
        if texts.shape[1] != 1:
            raise DataError(f"a text model reads one text column; got {texts.shape[1]} columns ({', '.join(map(str, texts.columns[:5]))})")
        texts = texts.iloc[:, 0]
    if isinstance(texts, str):
        raise DataError(f"expected a column of texts, got a single string ({texts[:40]!r}); wrap it in a list")
    values = texts.tolist() if hasattr(texts, "tolist") else list(texts)
    if values and isinstance(values[0], list) and all(isinstance(v, list) and len(v) == 1 for v in values):
        values = [v[0] for v in values]  # an (N, 1) array
    return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values]


class Vocabulary:
    """Token <-> id mapping: ids 0 and 1 are <pad> and <unk>, then tokens by decreasing training frequency."""

    def __init__(self, tokens: Iterable[str], *, tokenizer: str = "word", lowercase: bool = True):
        if tokenizer not in TOKENIZERS:
            raise DataError(f"unknown tokenizer '{tokenizer}' (known: {', '.join(TOKENIZERS)})")
        self.tokenizer = tokenizer
        self.lowercase = lowercase
        self.tokens = [PAD_TOKEN, UNK_TOKEN, *(t for t in tokens if t not in (PAD_TOKEN, UNK_TOKEN))]
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(
        cls,
        texts: Any,
        *,
        tokenizer: str = "word",
        min_frequency: int = 1,
        max_size: int | None = None,
        lowercase: bool = True,
    ) -> Vocabulary:
        """Count tokens in the training `texts`; keep those seen >= min_frequency times, the max_size most frequent.

        max_size counts <pad> and <unk>. Raises DataError when there are no texts or all are empty.
        """
        texts = as_texts(texts)
        if not texts:
            raise DataError("the text column is empty: no rows to build a vocabulary from")
        counts = Counter(t for text in texts for t in tokenize(text, tokenizer, lowercase=lowercase))
        if not counts:
            raise DataError(f"all {len(texts)} texts are empty or missing; a text model needs words to learn from")
        kept = [(t, n) for t, n in counts.items() if n >= min_frequency]
        kept.sort(key=lambda item: (-item[1], item[0]))  # frequency, then alphabetical: deterministic
        if max_size is not None:
            kept = kept[: max(0, max_size - 2)]
        if not kept:
            raise DataError(
                f"no token appears at least min_frequency={min_frequency} times in the {len(texts)} training texts; "
                "lower min_frequency"
            )
        return cls([t for t, _ in kept], tokenizer=tokenizer, lowercase=lowercase)

    def __len__(self) -> int:
        return len(self.tokens)

    def ids(self, text: str) -> list[int]:
        """Token ids of one text (unknown tokens -> 1)."""
        return [self.index.get(t, UNK) for t in tokenize(text, self.tokenizer, lowercase=self.lowercase)]

    def encode(self, texts: Any, max_length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Texts (N,) -> (ids (N, T) int64 padded with 0, lengths (N,) int64).

        T is max_length when given (longer texts keep their first max_length tokens), else the longest.
        """
        rows = [self.ids(text) for text in as_texts(texts)]
        if max_length is not None:
            rows = [r[:max_length] for r in rows]
        T = max_length if max_length is not None else max((len(r) for r in rows), default=0)
        ids = np.zeros((len(rows), max(T, 1)), dtype=np.int64)
        lengths = np.zeros(len(rows), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            lengths[i] = len(r)
        return ids, lengths

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of a row of ids, padding dropped."""
        return [self.tokens[i] if 0 <= i < len(self.tokens) else UNK_TOKEN for i in ids if i != PAD]

    def to_dict(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer, "lowercase": self.lowercase, "tokens": self.tokens[2:]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocabulary:
        return cls(data["tokens"], tokenizer=data.get("tokenizer", "word"), lowercase=data.get("lowercase", True))

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens, tokenizer={self.tokenizer!r})"


class RawText(TransformerMixin, BaseEstimator):
    """One text column passed through as an (N, 1) object array of str (missing -> ''), for the networks
    that tokenize text themselves (rnn, transformer); tabular models get TF-IDF instead. fit refuses a
    column with no text at all."""

    def fit(self, X: Any, y: Any = None) -> RawText:
        texts = as_texts(X)
        if not any(t.strip() for t in texts):
            raise DataError("the text column is empty: every value is missing or blank; give texts to learn from")
        self.n_features_in_ = 1
        return self

    def transform(self, X: Any) -> np.ndarray:
        return np.asarray(as_texts(X), dtype=object).reshape(-1, 1)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(list(input_features) if input_features is not None else ["text"], dtype=object)
