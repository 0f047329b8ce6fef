"""Tokenizers and the vocabulary: built on training texts only, padding 0, unknown 1, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from forgeml.data.text import PAD, UNK, RawText, Vocabulary, as_texts, tokenize
from forgeml.errors import DataError


def test_word_and_char_tokenizers():
    assert tokenize("Great product, works!") == ["great", "product", ",", "works", "!"]
    assert tokenize("Ab c", "char") == ["a", "b", " ", "c"]
    assert tokenize("Ab", "char", lowercase=False) == ["A", "b"]
    with pytest.raises(DataError, match="unknown tokenizer 'bpe'"):
        tokenize("x", "bpe")


def test_vocabulary_orders_by_frequency_and_maps_unseen_tokens_to_unknown():
    vocab = Vocabulary.build(["the cat sat", "the dog sat", "the end"])
    assert vocab.tokens[:4] == ["<pad>", "<unk>", "the", "sat"]  # then alphabetical among equals
    ids, lengths = vocab.encode(["the cat flew", "", "sat"])
    assert ids.dtype == np.int64 and ids.shape == (3, 3)
    assert ids[0].tolist() == [vocab.index["the"], vocab.index["cat"], UNK]
    assert ids[1].tolist() == [PAD, PAD, PAD] and lengths.tolist() == [3, 0, 1]
    assert vocab.decode(ids[0]) == ["the", "cat", "<unk>"]


def test_min_frequency_max_size_and_max_length():
    texts = ["a a a b b c", "a b d"]
    assert Vocabulary.build(texts, min_frequency=2).tokens == ["<pad>", "<unk>", "a", "b"]
    assert len(Vocabulary.build(texts, max_size=3)) == 3  # <pad>, <unk> and the most frequent
    ids, lengths = Vocabulary.build(texts).encode(["a b c d a", "a"], max_length=2)
    assert ids.shape == (2, 2) and lengths.tolist() == [2, 1]
    with pytest.raises(DataError, match="min_frequency"):
        Vocabulary.build(texts, min_frequency=10)


def test_json_round_trip():
    vocab = Vocabulary.build(["hello there", "hello again"], tokenizer="char")
    again = Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert again.tokens == vocab.tokens and again.tokenizer == "char"
    assert np.array_equal(again.encode(["hola"])[0], vocab.encode(["hola"])[0])


def test_missing_values_are_empty_texts():
    assert as_texts(pd.Series(["a", None, np.nan])) == ["a", "", ""]
    assert as_texts(pd.DataFrame({"review": ["x", "y"]})) == ["x", "y"]
    assert as_texts(np.array([["x"], ["y"]], dtype=object)) == ["x", "y"]


@pytest.mark.parametrize(("texts", "message"), [
    (pd.Series([], dtype=object), "the text column is empty"),
    (pd.Series(["", None, "   "]), "all 3 texts are empty or missing"),
    ("just one string", "single string"),
    (pd.DataFrame({"a": ["x"], "b": ["y"]}), "one text column; got 2 columns"),
])
def test_empty_or_malformed_text_columns_are_one_line_data_errors(texts, message):
    with pytest.raises(DataError, match=message) as info:
        Vocabulary.build(texts)
    assert "\n" not in str(info.value)


def test_raw_text_passes_one_column_through_and_refuses_an_empty_one():
    X = pd.DataFrame({"review": ["Great value", None, "broken"]})
    out = RawText().fit(X).transform(X)
    assert out.shape == (3, 1) and out[:, 0].tolist() == ["Great value", "", "broken"]
    with pytest.raises(DataError, match="the text column is empty"):
        RawText().fit(pd.DataFrame({"review": [None, "  ", ""]}))
