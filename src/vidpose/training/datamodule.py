"""Lightning data module for labeled frames: index batches in, augmented device batches out.

The loaders yield only row indices. ``on_after_batch_transfer`` gathers the rows from a uint8
cache that lives on the training device and augments them there (kornia), so the GPU is never
waiting on Python image code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from vidpose.config.schema import AugmentConfig
from vidpose.data.augment import augment_clip, augment_labeled
from vidpose.data.batches import LabeledBatch, UnlabeledClip
from vidpose.data.labeled import LabeledData
from vidpose.data.unlabeled import ClipLoader
from vidpose.training.ddp import rank_seed


@dataclass
class TrainBatch:
    """One training step: a labeled batch and, when semi-supervised, an unlabeled clip, on the
    same device.

    Attributes:
        labeled: B augmented labeled frames with their windows (``labeled.windows``).
        unlabeled: T consecutive frames, augmented with one transform whose original ->
            augmented matrix is ``unlabeled.matrix`` (3, 3); None for supervised training.
    """

    labeled: LabeledBatch
    unlabeled: UnlabeledClip | None = None


@dataclass
class RawBatch:
    """A training step's inputs before gathering and augmenting, on the training device: the
    labeled rows and, when semi-supervised, the next clip (augmented already only when a clip
    pipeline did it, ``clip.matrix`` set). :meth:`LabeledDataModule.prepare_train` turns it
    into a :class:`TrainBatch`; inside a captured CUDA graph that happens at every replay.
    """

    rows: torch.Tensor
    clip: UnlabeledClip | None = None

    def tensors_and_consts(self) -> tuple[dict[str, torch.Tensor], tuple]:
        """The step's device tensors and the host values it depends on (a CUDA graph's
        signature: the clip's original frame size is a constant of the captured step)."""
        tensors = {"rows": self.rows}
        consts: tuple = ()
        if self.clip is not None:
            tensors["clip_frames"] = self.clip.frames
            if self.clip.matrix is not None:
                tensors["clip_matrix"] = self.clip.matrix
            consts = (self.clip.orig_hw, self.clip.view_hw)
        return tensors, consts

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], consts: tuple) -> RawBatch:
        """The inverse of :meth:`tensors_and_consts` (video index and start frame are not
        used by training and come back as 0)."""
        clip = None
        if "clip_frames" in tensors:
            clip = UnlabeledClip(
                frames=tensors["clip_frames"],
                video_index=0,
                start_frame=0,
                orig_hw=consts[0],
                matrix=tensors.get("clip_matrix"),
                view_hw=consts[1],
            )
        return cls(rows=tensors["rows"], clip=clip)


class RandomBatchSampler(Sampler[list[int]]):
    """``steps`` batches of ``batch_size`` rows per epoch, reshuffled every epoch.

    Rows are drawn epoch-wise without replacement (cycling through a fresh permutation when one
    runs out), so every labeled frame is seen equally often whatever the batch size.

    With ``world_size`` N > 1 (one sampler per training process), each step draws the next
    ``batch_size * N`` rows of that same stream and ``rank`` r takes the r-th ``batch_size`` of
    them: together the N processes see exactly the batches of one process with an N times
    larger batch, and within a permutation no two processes get the same row. The stream
    depends only on ``seed`` and the epoch.
    """

    def __init__(
        self,
        rows: np.ndarray,
        batch_size: int,
        steps: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.rows = np.asarray(rows)
        self.batch_size = batch_size
        self.steps = steps
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        step_rows = self.batch_size * self.world_size
        mine = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        pool: list[int] = []
        for _ in range(self.steps):
            while len(pool) < step_rows:
                pool.extend(rng.permutation(self.rows).tolist())
            batch, pool = pool[:step_rows], pool[step_rows:]
            yield batch[mine]


def _collate(rows: list[int]) -> torch.Tensor:
    return torch.as_tensor(rows, dtype=torch.long)


def _own_generator() -> torch.Generator:
    """A loader's own generator: every epoch a DataLoader draws a seed for its worker
    processes (there are none here), from torch's global generator unless given one; ensemble
    members training at once in other threads seed that one and draw their initial weights
    from it (:mod:`vidpose.training.concurrent`)."""
    return torch.Generator()


class LabeledDataModule(L.LightningDataModule):
    """Labeled frames for training and validation.

    Args:
        data: the decoded labeled frames with their split.
        batch_size: labeled frames per training step (of this process).
        steps_per_epoch: training steps that make one epoch.
        augment: the ``augment`` config section (applied to training batches only).
        flip_perm: (K,) keypoint permutation applied by horizontal flips, or None.
        seed: sampling seed.
        eval_batch_size: frames per validation batch.
        clips: the unlabeled clips of this process (semi-supervised training), or None.
        rank: this training process among ``world_size`` (one per device): it trains on its
            share of each step's rows (:class:`RandomBatchSampler`) and of the validation
            frames, and draws its own augmentations.
        world_size: the number of training processes.
    """

    def __init__(
        self,
        data: LabeledData,
        batch_size: int,
        steps_per_epoch: int,
        augment: AugmentConfig,
        flip_perm: torch.Tensor | None,
        seed: int,
        eval_batch_size: int = 64,
        clips: ClipLoader | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        self.data = data
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.augment = augment
        self.flip_perm = flip_perm
        self.seed = seed
        self.eval_batch_size = eval_batch_size
        self.rank = rank
        self.world_size = world_size
        self._device_cache: dict[torch.device, tuple[torch.Tensor, ...]] = {}
        self._generator: torch.Generator | None = None
        self.clips = clips
        self._clip_iter: Iterator[UnlabeledClip] | None = None
        self._clip_epoch = -1
        self.train_sampler = RandomBatchSampler(
            data.indices("train"), batch_size, steps_per_epoch, seed, rank, world_size
        )

    def train_dataloader(self) -> DataLoader:
        # Pinned index batches reach the GPU with a non-blocking copy (a pageable one would make
        # the CPU wait for the GPU every step).
        return DataLoader(
            list(range(len(self.data.split))),
            batch_sampler=self.train_sampler,
            collate_fn=_collate,
            pin_memory=torch.cuda.is_available(),
            generator=_own_generator(),
        )

    def val_dataloader(self) -> DataLoader:
        rows = self.data.indices("val")
        if len(rows) == 0:
            rows = self.data.indices("train")
        # A share per process; the module sums the errors over all of them. With fewer frames
        # than processes each validates them all (a process without a batch would skip the
        # sum that the others wait for); each sum then counts N times and the means stay the same.
        if len(rows) >= self.world_size:
            rows = rows[self.rank :: self.world_size]
        return DataLoader(
            rows.tolist(),
            batch_size=self.eval_batch_size,
            shuffle=False,
            collate_fn=_collate,
            generator=_own_generator(),
        )

    def state_dict(self) -> dict:
        return {"sampler_epoch": self.train_sampler.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.train_sampler.epoch = int(state.get("sampler_epoch", 0))

    def _cache_on(self, device: torch.device) -> tuple:
        if device not in self._device_cache:
            d = self.data
            self._device_cache[device] = (
                d.windows.to(device),
                d.keypoints.to(device),
                d.visible.to(device),
                d.orig_hw.to(device),
                None if self.flip_perm is None else self.flip_perm.to(device),
            )
        return self._device_cache[device]

    def gather(self, rows: torch.Tensor) -> LabeledBatch:
        """Rows of the cache (frames with their windows) as a float batch on ``rows.device``,
        not augmented."""
        windows, keypoints, visible, orig_hw, _ = self._cache_on(rows.device)
        win = windows[rows].float().div_(255.0)
        return LabeledBatch(
            images=win[:, win.shape[1] // 2],
            keypoints=keypoints[rows],
            visible=visible[rows],
            frame_index=rows,
            orig_hw=orig_hw[rows],
            windows=win,
        )

    def generator_on(self, device: torch.device) -> torch.Generator:
        """One generator per device type, seeded once (per sampler epoch after a resume) and
        per process."""
        if self._generator is None or self._generator.device.type != device.type:
            self._generator = torch.Generator(device=device)
            seed = rank_seed(self.seed, self.rank)
            self._generator.manual_seed(seed + 7919 * self.train_sampler.epoch)
        return self._generator

    def next_clip(self, device: torch.device) -> UnlabeledClip:
        """The next unlabeled clip of this epoch on ``device``, not augmented (unless a clip
        pipeline augmented it: then ``matrix`` is set)."""
        assert self.clips is not None
        epoch = self.train_sampler.epoch - 1  # the sampler has already advanced
        if self._clip_iter is None or self._clip_epoch != epoch:
            self.clips.set_epoch(max(epoch, 0))
            self._clip_iter = iter(self.clips)
            self._clip_epoch = epoch
        try:
            clip = next(self._clip_iter)
        except StopIteration:  # more labeled steps than clips: start the epoch's clips again
            self._clip_iter = iter(self.clips)
            clip = next(self._clip_iter)
        return clip.to(device, non_blocking=True)

    def prepare_clip(self, clip: UnlabeledClip) -> UnlabeledClip:
        """The clip augmented with one transform for all frames, every view's (unless already
        augmented)."""
        if clip.matrix is not None:
            return clip
        device = clip.frames.device
        if self.augment.enabled:
            frames, matrix = augment_clip(clip.frames, self.augment, self.generator_on(device))
        else:
            frames, matrix = clip.frames, torch.eye(3, device=device)
        return dataclasses.replace(clip, frames=frames, matrix=matrix.float())

    def prepare_train(self, raw: RawBatch) -> TrainBatch:
        """Gather the rows from the device cache and augment them and the clip; no host sync,
        so that it can run inside a captured CUDA graph."""
        out = self.gather(raw.rows)
        if self.augment.enabled:
            device = raw.rows.device
            flip = None if self.flip_perm is None else self._cache_on(device)[4]
            out = augment_labeled(out, self.augment, flip, self.generator_on(device))
        clip = None if raw.clip is None else self.prepare_clip(raw.clip)
        return TrainBatch(labeled=out, unlabeled=clip)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Training: the rows and the next clip (a :class:`RawBatch`, prepared by the module's
        step); validation: the gathered, unaugmented batch."""
        if not isinstance(batch, torch.Tensor):
            return batch
        if self.trainer is None or not self.trainer.training:
            return self.gather(batch)
        clip = self.next_clip(batch.device) if self.clips is not None else None
        return RawBatch(rows=batch, clip=clip)
