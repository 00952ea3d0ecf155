"""Training monitors (seed 002): energy drift, loss spikes and gradient-norm explosions.

A monitor looks at one record per iteration, a dict with ``iteration``,
``loss``, ``grad_norm`` (before clipping) and, where the trainer has one,
``energy`` (the energy after every step of the rollout, ``(T + 1,)``), and
returns a message when something is wrong. :func:`check` runs a list of
them: a monitor with ``stop=True`` raises :class:`TrainingStopped` with its
message, the others warn (``RuntimeWarning``). ``sparse-universe train``
takes them as options and, when one stops the run, saves the checkpoint
and reports why.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections import deque
from typing import List, Optional, Sequence


class TrainingStopped(RuntimeError):
    """A monitor stopped training; the message says which and why."""


class Monitor:
    """Base class: ``__call__(record) -> message or None``; ``stop`` makes :func:`check` raise."""

    def __init__(self, stop: bool = False) -> None:
        self.stop = stop

    def __call__(self, record: dict) -> Optional[str]:
        raise NotImplementedError


class LossSpike(Monitor):
    """The loss is not finite, or above ``factor`` x the median of the last ``window`` losses."""

    def __init__(self, factor: float = 10.0, window: int = 20, stop: bool = False) -> None:
        super().__init__(stop)
        if not factor > 1 or window < 1:
            raise ValueError(f"Expected 'factor' > 1 and 'window' >= 1 (got {factor}, {window})")
        self.factor, self.recent = factor, deque(maxlen=window)

    def __call__(self, record: dict) -> Optional[str]:
        loss = float(record["loss"])
        if not math.isfinite(loss):
            return f"loss is {loss}"
        message = None
        if len(self.recent) == self.recent.maxlen:
            typical = statistics.median(self.recent)
            if loss > self.factor * abs(typical) and loss - typical > 0:
                message = (f"loss spike: {loss:.4g} > {self.factor:g} x the median {typical:.4g} of the last "
                           f"{len(self.recent)} iterations")
        self.recent.append(loss)
        return message


class GradNormExplosion(Monitor):
    """The gradient norm (before clipping) is not finite or above ``limit``."""

    def __init__(self, limit: float = 1e4, stop: bool = False) -> None:
        super().__init__(stop)
        if not limit > 0:
            raise ValueError(f"Expected 'limit' > 0 (got {limit})")
        self.limit = limit

    def __call__(self, record: dict) -> Optional[str]:
        norm = float(record["grad_norm"])
        if not math.isfinite(norm) or norm > self.limit:
            return f"gradient norm {norm:.4g} exceeds {self.limit:g}"
        return None


class EnergyDrift(Monitor):
    """The rollout's energy drifts: :math:`\\max_t |E_t - E_0| / |E_0|` above ``limit``."""

    def __init__(self, limit: float = 0.1, stop: bool = False) -> None:
        super().__init__(stop)
        if not limit > 0:
            raise ValueError(f"Expected 'limit' > 0 (got {limit})")
        self.limit = limit

    def __call__(self, record: dict) -> Optional[str]:
        energy = record.get("energy")
        if energy is None:
            return None
        e0 = float(energy[0])
        drift = float((energy - e0).abs().max()) / max(abs(e0), 1e-12)
        if not math.isfinite(drift) or drift > self.limit:
            return f"energy drift {drift:.4g} over the rollout exceeds {self.limit:g} (E0 = {e0:.4g})"
        return None


def check(monitors: Sequence[Monitor], record: dict) -> List[str]:
    """Run every monitor on ``record``: raise for a stopping one, warn for the others; return the messages."""
    messages = []
    for monitor in monitors:
        message = monitor(record)
        if message is None:
            continue
        message = f"{type(monitor).__name__} at iteration {record['iteration']}: {message}"
        if monitor.stop:
            raise TrainingStopped(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        messages.append(message)
    return messages
