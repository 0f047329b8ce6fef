"""Event forwarding: a sink set for a block receives what deep code emits, and only inside the block."""

from forgeml.events import emit, forward_events


def test_events_reach_the_sink_only_inside_the_block():
    seen = []
    emit("before", {})
    with forward_events(lambda e, p: seen.append((e, p))):
        emit("epoch", {"epoch": 1})
        with forward_events(None):
            emit("hidden", {})
        emit("epoch", {"epoch": 2})
    emit("after", {})
    assert seen == [("epoch", {"epoch": 1}), ("epoch", {"epoch": 2})]


def test_a_neural_fit_reports_its_epochs():
    import numpy as np

    from forgeml.models.neural import NeuralClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4)).astype("float32")
    y = (X[:, 0] > 0).astype(int)
    seen = []
    with forward_events(lambda e, p: seen.append(e)):
        NeuralClassifier(epochs=3, early_stopping=False, random_state=0).fit(X, y)
    assert seen.count("epoch") == 3 and seen[0] == "start" and seen[-1] == "end"
