"""Where progress events of deep library code go: a sink set by the caller for a block of work.

The pipeline sets the CLI's progress display as the sink while models fit, and the trainer inside a
neural estimator's `fit` sends its epoch events there, without a callback threaded through every
estimator's constructor (a callback is not a hyperparameter). No sink: events are only logged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

EventSink = Callable[[str, dict[str, Any]], None]

_SINK: ContextVar[EventSink | None] = ContextVar("forgeml_event_sink", default=None)


@contextmanager
def forward_events(sink: EventSink | None) -> Iterator[None]:
    """Send events emitted inside the block to `sink`."""
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


def emit(event: str, payload: dict[str, Any]) -> None:
    """Send one event to the current sink, if any."""
    sink = _SINK.get()
    if sink is not None:
        sink(event, payload)
