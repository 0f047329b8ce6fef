"""PyTorch modules for the neural families: one small network per file.

Every constructor takes plain JSON values only (ints, floats, strings, lists), so a saved model is
rebuilt from its class path and keyword arguments; weights travel separately as safetensors.
Importing this package imports nothing heavy: import the submodule you need (it imports torch).

    mlp.MLP                      tabular rows, optional embeddings for categorical codes
    cnn.CNN                      images (B, C, H, W)
    rnn.RNN                      LSTM / GRU over token ids (B, T) or numeric steps (B, T, F)
    transformer.Transformer      encoder over token ids or numeric steps
    autoencoder.Autoencoder      MLP encoder / decoder with a bottleneck
"""

# The classes a saved model may name (forgeml.registry.package loads nothing else).
NET_CLASSES = (
    "forgeml.models.nets.mlp.MLP",
    "forgeml.models.nets.cnn.CNN",
    "forgeml.models.nets.rnn.RNN",
    "forgeml.models.nets.transformer.Transformer",
    "forgeml.models.nets.autoencoder.Autoencoder",
)


def net_class(path: str) -> type:
    """The module class at `path`, one of NET_CLASSES; ValueError for anything else."""
    if path not in NET_CLASSES:
        raise ValueError(f"'{path}' is not a forgeml network class (known: {', '.join(NET_CLASSES)})")
    from importlib import import_module

    module, _, name = path.rpartition(".")
    return getattr(import_module(module), name)
