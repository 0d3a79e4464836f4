"""The LightningModule: runs the network, weighs and sums losses, logs them, measures pixel error.

It receives built objects (network, losses with their weights, optimizer factory; see
:mod:`vidpose.build`) and never reads the config. All losses are pure functions from
:mod:`vidpose.losses`; this module only decides which ones apply to a batch and how much each
counts. Networks of every kind go through the same calls (:mod:`vidpose.models.network`).
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch

from vidpose.build import OptimizerFactory
from vidpose.data.augment import unwarp_coords
from vidpose.data.batches import LabeledBatch, UnlabeledClip
from vidpose.data.geometry import input_to_orig
from vidpose.losses.registry import UnsupervisedInputs, WeightedLoss, ramp_weight
from vidpose.losses.supervised import SupervisedInputs, SupervisedLoss, pixel_error
from vidpose.models import HeadOutput, PoseNetwork, gaussian_targets_px, input_to_heatmap
from vidpose.training.datamodule import TrainBatch


class PoseModule(L.LightningModule):
    """Pose training: supervised loss on labeled frames, weighted unsupervised losses on clips.

    Args:
        network: the network to train.
        supervised_loss: the loss on labeled frames (summed over the network's decoders).
        unsupervised: the unsupervised losses with their weights (empty: supervised only).
        optimizer: ``factory(parameters) -> (optimizer, per-step scheduler)``.
        sigma: width of the Gaussian heatmap targets, heatmap cells.
        ramp_epochs: epochs over which the unsupervised weights ramp from 0.
        steps_per_epoch: optimizer steps per epoch (the ramp is in epochs).
        compile: compile the network in place with torch.compile.
    """

    def __init__(
        self,
        network: PoseNetwork,
        supervised_loss: SupervisedLoss,
        unsupervised: Sequence[WeightedLoss],
        optimizer: OptimizerFactory,
        *,
        sigma: float,
        ramp_epochs: float = 0.0,
        steps_per_epoch: int = 1,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.network = network
        self.supervised_loss = supervised_loss
        self.unsupervised = list(unsupervised)
        self.optimizer_factory = optimizer
        self.sigma = float(sigma)
        self.ramp_epochs = float(ramp_epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        if compile:
            # In place: parameter names (and so checkpoints) stay those of the plain network.
            self.network.compile(dynamic=False)

    def forward(self, images: torch.Tensor) -> HeadOutput:
        return self.network(images)

    def _supervised(self, outputs: Sequence[HeadOutput], batch: LabeledBatch) -> torch.Tensor:
        """The supervised loss of every decoder's output, summed."""
        target = torch.where(batch.visible[..., None], batch.keypoints, torch.nan)
        total = None
        for out in outputs:
            target_hm = None
            if out.heatmaps is not None:
                h, w = out.heatmaps.shape[-2:]
                target_hm = gaussian_targets_px(target, h, w, out.heatmap_stride, self.sigma)
            loss = self.supervised_loss(
                SupervisedInputs(
                    pred_coords=out.coords,
                    target_coords=target,
                    visible=batch.visible,
                    pred_heatmaps=out.heatmaps,
                    target_heatmaps=target_hm,
                )
            )
            total = loss if total is None else total + loss
        assert total is not None
        return total

    def unsupervised_losses(
        self, outputs: Sequence[HeadOutput], clip: UnlabeledClip
    ) -> dict[str, torch.Tensor]:
        """Each unsupervised loss on a clip's predictions (original-frame pixels), summed over
        the network's decoders."""
        out: dict[str, torch.Tensor] = {}
        for o in outputs:
            coords_in = unwarp_coords(o.coords.float(), clip.matrix)
            inputs = UnsupervisedInputs(
                coords_px=input_to_orig(coords_in, clip.orig_hw, clip.input_hw),
                confidence=o.confidence.float(),
                heatmap_logits=o.heatmaps,
                coords_hm=(
                    input_to_heatmap(o.coords.float(), o.heatmap_stride)
                    if o.heatmaps is not None
                    else None
                ),
            )
            for w in self.unsupervised:
                value = w.loss(inputs).loss
                out[w.name] = value if w.name not in out else out[w.name] + value
        return out

    def training_step(self, batch: TrainBatch, batch_idx: int) -> torch.Tensor:
        labeled, clip = batch.labeled, batch.unlabeled
        out_l, out_u = self.network.forward_train(
            labeled.as_windows(), None if clip is None else clip.frames
        )
        sup = self._supervised(out_l.decoders, labeled)
        total = sup
        if clip is not None and out_u is not None:
            ramp = ramp_weight(self.global_step / self.steps_per_epoch, self.ramp_epochs)
            values = self.unsupervised_losses(out_u.decoders, clip)
            for w in self.unsupervised:
                total = total + w.weight * ramp * values[w.name]
                self.log(f"train/{w.name}", values[w.name].detach(), batch_size=clip.n_frames)
            every = self._trainer.log_every_n_steps if self._trainer is not None else 1
            if self.global_step % max(1, every) == 0:
                # A Python float becomes a device tensor: a blocking copy, so only when logged.
                self.log("train/ramp", ramp, batch_size=1)
        bs = labeled.batch_size
        self.log("train/supervised", sup.detach(), prog_bar=True, batch_size=bs)
        self.log("train/loss", total.detach(), batch_size=bs)
        return total

    def validation_step(self, batch: LabeledBatch, batch_idx: int) -> None:
        out = self.network.forward_windows(batch.as_windows())
        loss = self._supervised(out.decoders, batch)
        input_hw = batch.input_hw
        pred = input_to_orig(out.combined.coords.float(), batch.orig_hw[:, None, :], input_hw)
        target = input_to_orig(batch.keypoints.float(), batch.orig_hw[:, None, :], input_hw)
        target = torch.where(batch.visible[..., None], target, torch.nan)
        # A labeled keypoint predicted as NaN (a diverged network) is infinitely wrong, not
        # missing: the error must get worse, so that checkpointing and early stopping see it.
        err = torch.where(batch.visible, pixel_error(pred, target).nan_to_num(torch.inf), torch.nan)
        n = int(batch.visible.sum())
        self.log("val/loss", loss, batch_size=batch.batch_size, sync_dist=True)
        if n:
            self.log(
                "val/pixel_error", torch.nanmean(err), prog_bar=True, batch_size=n, sync_dist=True
            )

    def configure_optimizers(self):
        opt, sched = self.optimizer_factory(self.parameters())
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
