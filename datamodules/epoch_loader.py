"""The loader Lightning sees: one ``DataLoader`` pass per epoch over an :class:`~datamodules.stream.AudioStream`.

It cuts the endless training stream into equal epochs and is resumable: its ``state_dict`` (saved by
Lightning in every checkpoint) records how far into the epoch the run got, and after a ``--ckpt_path``
resume the next pass skips those batches instead of replaying them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader

from datamodules.batch import AudioBatch
from datamodules.stream import AudioStream

__all__ = ["EpochLoader"]

# what must be unchanged for a resumed stream to continue the saved one
_STREAM_FIELDS = ("seed", "batch_size", "world_size", "rank")


class EpochLoader:
    """Wraps a ``DataLoader`` over an :class:`AudioStream`: sets the epoch, cuts training epochs, resumes.

    A new ``DataLoader`` (and new workers, which receive the updated epoch) is built per pass.

    Args:
        stream: the dataset.
        num_workers: loader worker processes.
        batches_per_epoch: stop after this many batches (training); None runs to exhaustion.
        epoch_fn: returns the epoch for the next pass (e.g. the trainer's ``current_epoch``).
        context: multiprocessing context for the workers (must match the skip counter's).
        pin_memory: pin batches (for GPU training).
        consumed_fn: returns how many batches of the current epoch the run has trained on (Lightning
            fetches ahead, so this comes from the trainer's step count); None counts the batches yielded.
    """

    def __init__(
        self,
        *,
        stream: AudioStream,
        num_workers: int,
        batches_per_epoch: int | None,
        epoch_fn: Callable[[], int],
        context: Any,
        pin_memory: bool = False,
        consumed_fn: Callable[[], int] | None = None,
    ) -> None:
        self.stream = stream
        self.num_workers = num_workers
        self.batches_per_epoch = batches_per_epoch
        self.epoch_fn = epoch_fn
        self.context = context
        self.pin_memory = pin_memory
        self.consumed_fn = consumed_fn
        self._yielded = 0
        self._resume: dict[str, int] | None = None

    def __len__(self) -> int:
        if self.batches_per_epoch is None:
            raise TypeError("evaluation loaders have no length: they read every shard once")
        return self.batches_per_epoch

    # ------------------------------------------------------------------ resumption
    def state_dict(self) -> dict[str, int]:
        """Where the run is: epoch, batches trained on in it, and the stream settings that must not change."""
        consumed = self.consumed_fn() if self.consumed_fn is not None else self._yielded
        state = {"epoch": int(self.stream.epoch), "batches": int(consumed)}
        state.update({field: int(getattr(self.stream, field)) for field in _STREAM_FIELDS})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Skip ``state["batches"]`` batches in the next pass if it is the same epoch (warns if it cannot)."""
        changed = [f"{f} {state[f]} -> {getattr(self.stream, f)}" for f in _STREAM_FIELDS
                   if f in state and int(state[f]) != int(getattr(self.stream, f))]  # fmt: skip
        if changed:
            warnings.warn("the data stream was saved with other settings (" + ", ".join(changed) + "): the "
                          "resumed run reads a different stream from the start of the epoch", stacklevel=2)  # fmt: skip
            return
        self._resume = {"epoch": int(state["epoch"]), "batches": int(state["batches"])}

    def _skip_for(self, epoch: int) -> int:
        resume, self._resume = self._resume, None
        if resume is None or resume["epoch"] != epoch:
            return 0  # a fresh epoch (a checkpoint saved at an epoch's end resumes into the next one)
        limit = self.batches_per_epoch
        return resume["batches"] if limit is None else min(resume["batches"], limit)

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[AudioBatch]:
        self.stream.epoch = int(self.epoch_fn())
        skip = self._skip_for(self.stream.epoch)
        self.stream.skip_batches = skip
        loader = DataLoader(
            self.stream,
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            multiprocessing_context=self.context if self.num_workers > 0 else None,
            persistent_workers=False,
            generator=torch.Generator().manual_seed(
                0
            ),  # the stream seeds itself: keep the global RNG untouched
        )
        iterator = iter(loader)
        count = self._yielded = skip
        try:
            while self.batches_per_epoch is None or count < self.batches_per_epoch:
                try:
                    batch = next(iterator)
                except StopIteration:
                    if self.batches_per_epoch is not None:
                        raise RuntimeError(f"the training stream ended after {count} of {self.batches_per_epoch}"
                                           " batches; shards may be empty or unreadable") from None  # fmt: skip
                    return
                count = self._yielded = count + 1
                yield batch
        finally:
            del iterator  # shuts the workers down (flushing their skip counts)
