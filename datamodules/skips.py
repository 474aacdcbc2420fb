"""Skipping bad samples: the exception a decoding stage raises and a cross-worker skip counter.

Workers of a ``DataLoader`` are separate processes, so counts made there are sent to the main
process through a ``multiprocessing`` queue created with the loader's own start method; the main
process drains it in :meth:`SkipCounter.totals`.
"""

from __future__ import annotations

import logging
import queue as queue_lib
from collections import Counter
from multiprocessing.context import BaseContext
from typing import Any

from torch.utils.data import get_worker_info

__all__ = ["SKIP_REASONS", "SkipCounter", "SkipSample"]

log = logging.getLogger(__name__)

#: Every reason a sample (or a whole shard) can be skipped for; metrics are logged for all of them.
SKIP_REASONS: tuple[str, ...] = (
    "shard_error",  # the tar stream could not be opened or read (counted once per error)
    "missing_json",
    "bad_json",
    "missing_audio",
    "bad_audio",  # undecodable / empty / zero-length audio member
    "nonfinite_audio",  # NaN or inf samples
    "missing_codes",
    "bad_codes",  # not an int16 [K, F] array, wrong K or values out of range
    "codec_mismatch",  # json codec_id differs from the expected codec
    "length_mismatch",  # codes and audio durations disagree
    "too_short",
    "bad_style",
)

#: Warnings logged per reason and process before further ones are summarised.
MAX_WARNINGS_PER_REASON = 20


class SkipSample(Exception):
    """Raised by a decoding stage: the sample is skipped and counted under ``reason``."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in SKIP_REASONS:
            raise ValueError(f"unknown skip reason {reason!r}; valid reasons: {', '.join(SKIP_REASONS)}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SkipCounter:
    """Counts skipped samples by reason across the main process and ``DataLoader`` workers.

    Args:
        context: multiprocessing context of the loader's workers (None: counting in-process only).
        split: name used in warnings ("train", "val", ...).
    """

    def __init__(self, *, context: BaseContext | None = None, split: str = "data") -> None:
        self.split = split
        self._local: Counter[str] = Counter()
        self._warned: Counter[str] = Counter()
        self._queue: Any = context.Queue() if context is not None else None

    def record(self, reason: str, *, url: str, key: str, detail: str) -> None:
        """Log a warning naming the shard URL and key, and count one skip under ``reason``."""
        if reason not in SKIP_REASONS:
            raise ValueError(f"unknown skip reason {reason!r}; valid reasons: {', '.join(SKIP_REASONS)}")
        self._warned[reason] += 1
        if self._warned[reason] <= MAX_WARNINGS_PER_REASON:
            log.warning("[%s] skipping sample %r of shard %r (%s): %s", self.split, key, url, reason, detail)
            if self._warned[reason] == MAX_WARNINGS_PER_REASON:
                log.warning(
                    "[%s] further %r skips are counted but not logged by this process", self.split, reason
                )
        if self._queue is not None and get_worker_info() is not None:
            self._queue.put(reason)
        else:
            self._local[reason] += 1

    def handler(self, exn: Exception) -> bool:
        """WebDataset exception handler: count a shard-level error and continue."""
        url = next((a for a in reversed(exn.args[1:]) if isinstance(a, str)), "?")
        self.record(
            "shard_error",
            url=url,
            key="-",
            detail=f"{type(exn).__name__}: {exn.args[0] if exn.args else exn}",
        )
        return True

    def totals(self) -> dict[str, int]:
        """Skips so far by reason (only reasons that occurred), including those of finished workers."""
        if self._queue is not None:
            while True:
                try:
                    self._local[self._queue.get_nowait()] += 1
                except queue_lib.Empty:
                    break
        return {r: n for r, n in self._local.items() if n}
