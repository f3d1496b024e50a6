"""Query-stream detection inside the service: one detector per API key, in step with the log.

A detector such as PRADA (:mod:`multisteal.query.detection`) judges a key's stream as a
sequence, but the service answers it from several worker processes and replicas. The log is
the stream of record: every batch a detector observed is logged with a payload (its inputs as
the client sent them and the model's decisions), and before a worker judges a new batch its
:class:`DetectorWatch` replays the key's logged batches it has not seen yet, inside the
transaction that holds the key's lock (:meth:`multisteal.service.store.Store.admit_batch`).
Every worker's detector has therefore observed exactly the logged stream, in log order, and the
first flag is stored with the key for every worker and replica to see — also after a restart,
when a fresh worker rebuilds the detector from the log.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from multisteal.errors import MultistealError
from multisteal.query.api import Detector

__all__ = ["DetectorWatch", "decode_payload", "encode_payload"]

BAD_PAYLOAD = (
    "A logged batch's detector payload cannot be read ({problem}); the log was not written by "
    "this version of the service."
)


def encode_payload(inputs: Sequence[Any], decisions: NDArray[np.int64]) -> bytes:
    """The log payload of one observed batch: its JSON inputs and the model's decisions."""
    text = json.dumps(
        {"inputs": list(inputs), "labels": [int(v) for v in decisions]},
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ":"),
    )
    return zlib.compress(text.encode("utf-8"), 6)


def decode_payload(payload: bytes) -> tuple[list[Any], NDArray[np.int64]]:
    """The JSON inputs and decisions of :func:`encode_payload`."""
    try:
        data = json.loads(zlib.decompress(payload).decode("utf-8"))
        return list(data["inputs"]), np.asarray(data["labels"], dtype=np.int64)
    except (zlib.error, ValueError, KeyError, TypeError) as exc:
        raise MultistealError(BAD_PAYLOAD.format(problem=exc)) from None


class DetectorWatch:
    """One worker's detectors, one per key (a :class:`~multisteal.service.store.StreamWatch`).

    Parameters
    ----------
    make : callable
        A new detector (e.g. ``lambda: make_detector("prada", {}, model=target)``).
    validate : callable
        The service's input validation, mapping a payload's JSON inputs to what the detector
        observed when the batch arrived (the target's ``InputSpec.validate``).
    """

    def __init__(self, make: Callable[[], Detector], validate: Callable[[list[Any]], Any]) -> None:
        self._make = make
        self._validate = validate
        self.name = str(make().name)
        """The detector's name (e.g. ``prada``)."""
        self._state: dict[int, tuple[Detector, int]] = {}
        self.replayed = 0
        """Batches this worker observed from the log (logged by others or before a restart)."""

    def seen(self, key_id: int) -> int:
        return self._state[key_id][1] if key_id in self._state else -1

    def catch_up(self, key_id: int, pending: Sequence[tuple[int, bytes]]) -> None:
        detector, last = self._state.get(key_id) or (self._make(), -1)
        for number, data in pending:
            if number <= last:
                continue
            self._observe(detector, data)
            self.replayed += 1
            last = number
        self._state[key_id] = (detector, last)

    def observe(
        self, key_id: int, pending: Sequence[tuple[int, bytes]], batch: int, payload: bytes
    ) -> int | None:
        self.catch_up(key_id, [(number, data) for number, data in pending if number < batch])
        detector, _ = self._state[key_id]
        self._observe(detector, payload)
        self._state[key_id] = (detector, batch)
        return detector.flagged_after

    def _observe(self, detector: Detector, payload: bytes) -> None:
        inputs, labels = decode_payload(payload)
        detector.observe(self._validate(inputs), labels)

    def forget(self, key_id: int) -> None:
        self._state.pop(key_id, None)

    def detector(self, key_id: int) -> Detector | None:
        """The key's detector as this worker has it (``None``: not observed here yet)."""
        return self._state[key_id][0] if key_id in self._state else None
