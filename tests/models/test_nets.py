"""The networks: output shapes, padding that never leaks into outputs, JSON-only constructors."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from forgeml.models.nets import NET_CLASSES, net_class
from forgeml.models.nets.autoencoder import Autoencoder
from forgeml.models.nets.cnn import CNN
from forgeml.models.nets.layers import (
    ACTIVATIONS,
    masked_mean,
    padding_mask,
    sinusoidal_positions,
)
from forgeml.models.nets.mlp import MLP
from forgeml.models.nets.rnn import RNN
from forgeml.models.nets.transformer import Transformer


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_mlp_with_and_without_categorical_embeddings():
    net = MLP(5, 3, [16, 8], cardinalities=[4, 10])
    assert net(torch.randn(7, 5), torch.randint(0, 4, (7, 2))).shape == (7, 3)
    assert [e.embedding_dim for e in net.embeddings] == [3, 6]  # sized by cardinality: 1.6 c^0.56
    only_codes = MLP(0, 2, [8], cardinalities=[3], embedding_dims=[4], batch_norm=False, activation="gelu")
    assert only_codes(torch.zeros(5, 0), torch.randint(0, 3, (5, 1))).shape == (5, 2)
    assert MLP(4, 1, [8])(torch.randn(2, 4)).shape == (2, 1)
    with pytest.raises(ValueError, match="embedding sizes"):
        MLP(2, 1, [4], cardinalities=[3, 3], embedding_dims=[2])


def test_cnn_blocks_pool_only_while_the_map_is_large_enough():
    net = CNN(1, 10, [8, 8], [8, 16, 32])  # 8 -> 4 -> 2 -> 1
    assert net(torch.randn(4, 1, 8, 8)).shape == (4, 10)
    tiny = CNN(3, 2, [1, 1], [4, 4])  # nothing to pool: no error
    assert tiny(torch.randn(2, 3, 1, 1)).shape == (2, 2)
    flat = CNN(3, 2, [5, 7], [8], global_pool=False, head_hidden=16, pool="avg")
    assert flat(torch.randn(4, 3, 5, 7)).shape == (4, 2)
    with pytest.raises(ValueError, match="odd"):
        CNN(1, 2, [8, 8], [4], kernel_size=4)


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_rnn_ignores_what_lies_beyond_each_length(rnn_type, bidirectional, pooling):
    net = RNN(2, vocab_size=20, rnn_type=rnn_type, num_layers=2, bidirectional=bidirectional, pooling=pooling).eval()
    x = torch.randint(1, 20, (3, 9))
    lengths = torch.tensor([4, 9, 1])
    changed = x.clone()
    changed[0, 4:] = 7
    changed[2, 1:] = 5
    out = net(x, lengths)
    assert out.shape == (3, 2)
    assert torch.allclose(out, net(changed, lengths), atol=1e-6)


def test_rnn_reads_numeric_steps_and_empty_sequences():
    net = RNN(1, n_features=3).eval()
    assert net(torch.randn(4, 6, 3), torch.tensor([6, 2, 3, 0])).shape == (4, 1)
    assert net(torch.randn(2, 5, 3)).shape == (2, 1)  # no lengths: every step counts
    with pytest.raises(ValueError, match="exactly one"):
        RNN(1, vocab_size=5, n_features=2)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_transformer_masks_padding(pooling, positional):
    net = Transformer(3, vocab_size=30, max_length=10, d_model=16, nhead=4, pooling=pooling, positional=positional).eval()
    x = torch.randint(1, 30, (4, 12))  # longer than max_length: truncated
    lengths = torch.tensor([12, 3, 5, 0])
    changed = x.clone()
    changed[1, 3:] = 7
    out = net(x, lengths)
    assert out.shape == (4, 3)
    assert torch.allclose(out[1], net(changed, lengths)[1], atol=1e-5)
    sinusoidal_kept_out = positional == "sinusoidal"
    assert ("positions" in net.state_dict()) != sinusoidal_kept_out  # the fixed table is rebuilt, not saved


def test_transformer_numeric_input_and_bad_arguments():
    assert Transformer(2, n_features=4, d_model=8, nhead=2)(torch.randn(3, 6, 4)).shape == (3, 2)
    with pytest.raises(ValueError, match="divisible"):
        Transformer(2, vocab_size=5, d_model=10, nhead=4)
    with pytest.raises(ValueError, match="pooling"):
        Transformer(2, vocab_size=5, pooling="last")


def test_autoencoder_encodes_to_the_bottleneck():
    net = Autoencoder(6, [16, 8], 2, batch_norm=True, dropout=0.1)
    x = torch.randn(5, 6)
    assert net(x).shape == (5, 6) and net.encode(x).shape == (5, 2) and net.decode(torch.randn(5, 2)).shape == (5, 6)


def test_layers():
    pad = padding_mask(torch.tensor([2, 0, 3]), 3)
    assert pad.tolist() == [[False, False, True], [True, True, True], [False, False, False]]
    x = torch.arange(9, dtype=torch.float32).reshape(3, 3, 1)
    assert masked_mean(x, pad)[:, 0].tolist() == [0.5, 0.0, 7.0]
    table = sinusoidal_positions(5, 7)
    assert table.shape == (5, 7) and table[0, 1] == 1.0
    from forgeml.models.neural_base import ACTIVATIONS as DECLARED

    assert tuple(ACTIVATIONS) == DECLARED  # the estimators' declared options are the nets' options


@pytest.mark.parametrize(("path", "kwargs", "inputs"), [
    ("forgeml.models.nets.mlp.MLP", {"n_numeric": 3, "n_outputs": 2, "hidden_sizes": [4], "cardinalities": [3]},
     lambda: (torch.randn(2, 3), torch.tensor([[0], [2]]))),
    ("forgeml.models.nets.cnn.CNN", {"in_channels": 1, "n_outputs": 2, "image_size": [4, 4], "channels": [4]},
     lambda: (torch.randn(2, 1, 4, 4),)),
    ("forgeml.models.nets.rnn.RNN", {"n_outputs": 2, "vocab_size": 9}, lambda: (torch.randint(0, 9, (2, 5)),)),
    ("forgeml.models.nets.transformer.Transformer", {"n_outputs": 2, "n_features": 2, "max_length": 8, "d_model": 8,
                                                     "nhead": 2}, lambda: (torch.randn(2, 5, 2),)),
    ("forgeml.models.nets.autoencoder.Autoencoder", {"n_features": 3, "bottleneck": 2}, lambda: (torch.randn(2, 3),)),
])
def test_every_net_rebuilds_from_json_kwargs_and_weights(path, kwargs, inputs):
    cls = net_class(path)
    net = cls(**kwargs).eval()
    twin = cls(**json.loads(json.dumps(kwargs))).eval()
    twin.load_state_dict(net.state_dict(), strict=True)
    x = inputs()
    assert torch.equal(net(*x), twin(*x))
    assert path in NET_CLASSES


def test_net_class_is_an_allow_list():
    with pytest.raises(ValueError, match="not a forgeml network"):
        net_class("os.system")
    with pytest.raises(ValueError):
        net_class("torch.nn.Linear")
