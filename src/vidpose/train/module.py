"""The LightningModule: weighs and sums losses, logs them, and measures pixel error.

All losses are pure functions from :mod:`vidpose.losses`; this module only decides which ones
apply to a batch and how much each counts.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from vidpose.data.augment import input_to_orig, unwarp_coords
from vidpose.data.batches import LabeledBatch, UnlabeledClip
from vidpose.errors import ConfigError
from vidpose.losses.registry import (
    UnsupervisedContext,
    UnsupervisedInputs,
    get_unsupervised_loss,
    ramp_weight,
)
from vidpose.losses.supervised import SupervisedInputs, get_supervised_loss, pixel_error
from vidpose.models import (
    build_network,
    gaussian_targets_px,
    get_head_spec,
    head_config_options,
    input_to_heatmap,
)
from vidpose.models.heads import HeadOutput
from vidpose.train.datamodule import ContextBatch, TrainBatch


def split_output(out: HeadOutput, n: int) -> tuple[HeadOutput, HeadOutput]:
    """The first ``n`` frames' outputs and the rest's."""

    def part(sl: slice) -> HeadOutput:
        hm = out.heatmaps[sl] if out.heatmaps is not None else None
        return HeadOutput(out.coords[sl], out.confidence[sl], hm, out.heatmap_stride)

    return part(slice(0, n)), part(slice(n, None))


def check_head_losses(head: str, losses: list[str], context_frames: int, clip_length: int) -> None:
    """ConfigError when a context head's window does not fit in an unlabeled clip."""
    if losses and "context_frames" in get_head_spec(head).options and clip_length < context_frames:
        raise ConfigError(
            f"model.head={head} with model.losses={list(losses)}: unlabeled.clip_length="
            f"{clip_length} is shorter than model.context_frames={context_frames}; a clip of T "
            f"frames gives T - {context_frames - 1} context predictions, so set "
            f"unlabeled.clip_length >= {context_frames} (e.g. {context_frames + 11})"
        )


class PoseModule(L.LightningModule):
    """Supervised pose training.

    Args:
        cfg: the resolved config as a plain dict (saved in checkpoints as hyperparameters).
        keypoints: keypoint names, in label-table order.
        total_steps: optimizer steps in the whole run (for the LR schedule).
    """

    def __init__(
        self,
        cfg: dict[str, Any],
        keypoints: list[str],
        total_steps: int,
        steps_per_epoch: int = 1,
        unsup_ctx: UnsupervisedContext | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["unsup_ctx"])
        self.steps_per_epoch = steps_per_epoch
        self.unsup_ctx = unsup_ctx or UnsupervisedContext()
        self.unsup_losses = [get_unsupervised_loss(n) for n in cfg["model"]["losses"]]
        self.unsup_weights = {
            n: float(cfg["losses"]["weights"].get(n, 1.0)) for n in cfg["model"]["losses"]
        }
        self.ramp_epochs = float(cfg["losses"]["ramp_epochs"])
        m = cfg["model"]
        self.network = build_network(
            backbone=m["backbone"],
            head=m["head"],
            n_keypoints=len(keypoints),
            pretrained=m["pretrained"],
            heatmap_stride=m["heatmap_stride"],
            **head_config_options(m["head"], context_frames=m["context_frames"]),
        )
        check_head_losses(
            m["head"], m["losses"], m["context_frames"], cfg["unlabeled"]["clip_length"]
        )
        self.supervised_loss = get_supervised_loss(m["supervised_loss"])
        self.sigma = float(m["sigma"])
        self.total_steps = total_steps
        if cfg["training"].get("channels_last", True):
            self.network = self.network.to(memory_format=torch.channels_last)
        if cfg["training"].get("compile", False):
            # In place: parameter names (and so checkpoints) stay those of the plain network.
            self.network.compile(dynamic=False)

    def forward(self, images: torch.Tensor) -> HeadOutput:
        return self.network(images)

    def _images(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images or (B, W, 3, H, W) windows in the training memory format."""
        if self.hparams.cfg["training"].get("channels_last", True):
            if images.ndim == 5:  # per frame channels_last, so the flattened batch is too
                flat = images.flatten(0, 1).contiguous(memory_format=torch.channels_last)
                return flat.unflatten(0, images.shape[:2])
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def _supervised_loss(self, out: HeadOutput, batch: LabeledBatch) -> torch.Tensor:
        target = torch.where(batch.visible[..., None], batch.keypoints, torch.nan)
        target_hm = None
        if out.heatmaps is not None:
            h, w = out.heatmaps.shape[-2:]
            target_hm = gaussian_targets_px(target, h, w, out.heatmap_stride, self.sigma)
        return self.supervised_loss(
            SupervisedInputs(
                pred_coords=out.coords,
                target_coords=target,
                visible=batch.visible,
                pred_heatmaps=out.heatmaps,
                target_heatmaps=target_hm,
            )
        )

    def supervised_step(
        self, batch: LabeledBatch | ContextBatch
    ) -> tuple[torch.Tensor, HeadOutput]:
        """Supervised loss and the (combined) predictions of one labeled batch.

        A context batch trains both decoders: the loss is the single-frame decoder's plus the
        context decoder's.
        """
        if isinstance(batch, ContextBatch):
            both = self.network.forward_window(self._images(batch.windows))
            loss = self._supervised_loss(both.single, batch.labeled) + self._supervised_loss(
                both.context, batch.labeled
            )
            return loss, both.combined
        out = self.network(self._images(batch.images))
        return self._supervised_loss(out, batch), out

    def unsupervised_losses(self, out: HeadOutput, clip) -> dict[str, torch.Tensor]:
        """Each unsupervised loss on one clip's predictions, in original-frame pixels."""
        coords_in = unwarp_coords(out.coords.float(), clip.matrix)
        coords_px = input_to_orig(coords_in, clip.orig_hw, clip.input_hw)
        coords_hm = (
            input_to_heatmap(out.coords.float(), out.heatmap_stride)
            if out.heatmaps is not None
            else None
        )
        inputs = UnsupervisedInputs(
            coords_px=coords_px,
            confidence=out.confidence.float(),
            heatmap_logits=out.heatmaps,
            coords_hm=coords_hm,
        )
        return {loss.name: loss(inputs, self.unsup_ctx).loss for loss in self.unsup_losses}

    def _context_semisupervised_step(
        self, labeled: ContextBatch, clip: UnlabeledClip
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Supervised loss on B windows and unsupervised losses on a clip of T frames, with the
        backbone run once on the B * W window frames and the T clip frames together.

        The clip's T frames give T - W + 1 centre predictions from overlapping windows of the
        same per-frame features (frames W // 2 .. T - 1 - W // 2), so consecutive predictions
        never straddle two separately computed windows. Each unsupervised loss is applied to
        both decoders' predictions and the two values are summed.
        """
        b, w = labeled.windows.shape[:2]
        frames = torch.cat([labeled.windows.flatten(0, 1), clip.frames.to(labeled.windows.dtype)])
        feats = self.network.forward_features(self._images(frames))
        if isinstance(feats, torch.Tensor):
            feats = {self.network.stride: feats}
        window = [
            {s: f[: b * w].unflatten(0, (b, w))[:, k] for s, f in feats.items()} for k in range(w)
        ]
        both = self.network.forward_from_features(window)
        sup = self._supervised_loss(both.single, labeled.labeled) + self._supervised_loss(
            both.context, labeled.labeled
        )
        seq = self.network.forward_sequence({s: f[b * w :] for s, f in feats.items()})
        unsup: dict[str, torch.Tensor] = {}
        for out in (seq.single, seq.context):
            for name, value in self.unsupervised_losses(out, clip).items():
                unsup[name] = unsup.get(name, 0.0) + value
        return sup, unsup

    def training_step(
        self, batch: LabeledBatch | ContextBatch | TrainBatch, batch_idx: int
    ) -> torch.Tensor:
        if isinstance(batch, TrainBatch):
            clip = batch.unlabeled
            if isinstance(batch.labeled, ContextBatch):
                labeled = batch.labeled.labeled
                sup, unsup = self._context_semisupervised_step(batch.labeled, clip)
            else:
                labeled = batch.labeled
                # One forward over labeled frames and clip together: one backbone pass per step.
                images = torch.cat([labeled.images, clip.frames.to(labeled.images.dtype)])
                out = self.network(self._images(images))
                out_l, out_u = split_output(out, len(labeled.images))
                sup = self._supervised_loss(out_l, labeled)
                unsup = self.unsupervised_losses(out_u, clip)
            ramp = ramp_weight(self.global_step / self.steps_per_epoch, self.ramp_epochs)
            total = sup
            for name, value in unsup.items():
                total = total + self.unsup_weights[name] * ramp * value
                self.log(f"train/{name}", value.detach(), batch_size=clip.n_frames)
            every = self._trainer.log_every_n_steps if self._trainer is not None else 1
            if self.global_step % max(1, every) == 0:
                # A Python float becomes a device tensor: a blocking copy, so only when logged.
                self.log("train/ramp", ramp, batch_size=1)
        else:
            sup, _ = self.supervised_step(batch)
            labeled = batch.labeled if isinstance(batch, ContextBatch) else batch
            total = sup
        bs = len(labeled.images)
        self.log("train/supervised", sup.detach(), prog_bar=True, batch_size=bs)
        self.log("train/loss", total.detach(), batch_size=bs)
        return total

    def validation_step(self, batch: LabeledBatch | ContextBatch, batch_idx: int) -> None:
        loss, out = self.supervised_step(batch)
        if isinstance(batch, ContextBatch):
            batch = batch.labeled
        input_hw = batch.images.shape[-2:]
        pred = input_to_orig(out.coords.float(), batch.orig_hw[:, None, :], input_hw)
        target = input_to_orig(batch.keypoints.float(), batch.orig_hw[:, None, :], input_hw)
        target = torch.where(batch.visible[..., None], target, torch.nan)
        err = pixel_error(pred, target)
        n = int((~torch.isnan(err)).sum())
        self.log("val/loss", loss, batch_size=len(batch.images), sync_dist=True)
        if n:
            self.log(
                "val/pixel_error", torch.nanmean(err), prog_bar=True, batch_size=n, sync_dist=True
            )

    def configure_optimizers(self):
        t = self.hparams.cfg["training"]
        params = [p for p in self.parameters() if p.requires_grad]
        name = t["optimizer"]
        if name == "adam":
            opt = torch.optim.Adam(params, lr=t["lr"], weight_decay=t["weight_decay"])
        elif name == "adamw":
            opt = torch.optim.AdamW(params, lr=t["lr"], weight_decay=t["weight_decay"])
        else:
            opt = torch.optim.SGD(params, lr=t["lr"], momentum=0.9, weight_decay=t["weight_decay"])
        total = max(1, self.total_steps)
        warmup = int(t.get("warmup_steps", 0) or 0)
        sched = t["scheduler"]

        def factor(step: int) -> float:
            w = min(1.0, (step + 1) / warmup) if warmup else 1.0
            if sched == "cosine":
                return w * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
            if sched == "multistep":
                n = sum(step >= round(f * total) for f in t["milestones"])
                return w * t["gamma"] ** n
            return w

        lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": lr_sched, "interval": "step"}}
