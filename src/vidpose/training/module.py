"""The LightningModule: runs the network, weighs and sums losses, logs them, measures pixel error.

It receives built objects (network, losses with their weights, optimizer factory; see
:mod:`vidpose.build`) and never reads the config. All losses are pure functions from
:mod:`vidpose.losses`; this module only decides which ones apply to a batch and how much each
counts. Networks of every kind go through the same calls (:mod:`vidpose.models.network`).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch

from vidpose.build import OptimizerFactory
from vidpose.data.augment import in_frame, unwarp_coords, warp_coords
from vidpose.data.batches import LabeledBatch, UnlabeledClip
from vidpose.data.geometry import input_to_orig
from vidpose.losses.registry import UnsupervisedInputs, WeightedLoss, ramp_weight
from vidpose.losses.supervised import SupervisedInputs, SupervisedLoss, pixel_error
from vidpose.models import HeadOutput, PoseNetwork, gaussian_targets_px, input_to_heatmap
from vidpose.training.async_log import AsyncMetrics
from vidpose.training.datamodule import RawBatch, TrainBatch
from vidpose.training.ddp import GradientAverager, broadcast_buffers
from vidpose.training.graphed import ReplayOptimizer, StepGraphs, lr_to_tensors


def wide(x: torch.Tensor, cameras: int) -> torch.Tensor:
    """(C * T, K, ...) per image, camera after camera -> (T, C * K, ...): each instant's
    cameras side by side (keypoint k of camera c at ``c * K + k``); unchanged for one camera."""
    if cameras == 1:
        return x
    ct, k = x.shape[:2]
    per = x.reshape(cameras, ct // cameras, k, *x.shape[2:]).transpose(0, 1)
    return per.reshape(ct // cameras, cameras * k, *x.shape[2:])


def clip_inputs(
    o: HeadOutput, clip: UnlabeledClip, matrix: torch.Tensor
) -> tuple[UnsupervisedInputs, torch.Tensor]:
    """The unsupervised losses' view of one decoder's predictions on a clip (original-frame
    px; wide over the clip's cameras, see :class:`UnsupervisedInputs`), and the predictions in
    unaugmented input pixels, per image.

    Args:
        o: the decoder's output on the clip's frames (camera after camera).
        clip: the clip (its frame sizes, its cameras).
        matrix: (3, 3) original input -> augmented input pixels of the frames ``o`` saw.
    """
    coords_in = unwarp_coords(o.coords.float(), matrix)
    c = clip.n_views
    if c == 1:
        coords_px = input_to_orig(coords_in, clip.orig_hw, clip.input_hw)
    else:  # each camera's frames back to its own frame size
        per = coords_in.reshape(c, -1, *coords_in.shape[1:])
        coords_px = torch.stack(
            [input_to_orig(per[v], hw, clip.input_hw) for v, hw in enumerate(clip.view_hw)]
        ).flatten(0, 1)
    inputs = UnsupervisedInputs(
        coords_px=wide(coords_px, c),
        confidence=wide(o.confidence.float(), c),
        heatmap_logits=o.heatmaps,
        coords_hm=(
            input_to_heatmap(o.coords.float(), o.heatmap_stride) if o.heatmaps is not None else None
        ),
        cameras=c,
    )
    return inputs, coords_in


STEPS_AHEAD = 3
"""Training steps the host may queue ahead of the GPU (CUDA graphs; see ``_bound_lead``)."""


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
        cuda_graphs: run each training step as a replay of a captured CUDA graph
            (:mod:`vidpose.training.graphed`); needs a CUDA device.
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
        cuda_graphs: bool = False,
    ) -> None:
        super().__init__()
        # Manual optimization: the step (update included) may be one captured CUDA graph.
        self.automatic_optimization = False
        self.cuda_graphs = bool(cuda_graphs)
        self._graphs: StepGraphs | None = None
        # Validation's forward as CUDA graphs too (fixed frames, fixed shapes): eagerly it costs
        # the host more than a dozen training steps, and ensemble members training at once
        # share one host (see :mod:`vidpose.training.concurrent`).
        self._val_graphs: StepGraphs | None = None
        self._averager: GradientAverager | None = None
        self._ramp: torch.Tensor | None = None
        self._ahead: collections.deque[torch.cuda.Event] = collections.deque()
        self.metric_log = AsyncMetrics()
        self.network = network
        self.supervised_loss = supervised_loss
        self.unsupervised = list(unsupervised)
        self.optimizer_factory = optimizer
        self.sigma = float(sigma)
        self.ramp_epochs = float(ramp_epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        # Per unsupervised loss, summed on the device over this epoch's steps (no host sync):
        # [active terms, counted terms, all terms, weighted loss / supervised loss, steps].
        self._epoch_activity: dict[str, torch.Tensor] = {}
        # Per loss, one row of the above per finished epoch (host floats).
        self.activity_history: dict[str, list[list[float]]] = {w.name: [] for w in unsupervised}
        self._device_history: dict[str, list[torch.Tensor]] = {}
        # Validation sums on the device: [error sum, labeled keypoints, loss sum, frames].
        self._val_sums: torch.Tensor | None = None
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

    def _second_view(self, clip: UnlabeledClip) -> tuple[Sequence[HeadOutput], torch.Tensor] | None:
        """The network's outputs on the second view of the clip that a loss with
        ``needs_second_view`` draws (None when no such loss is trained), and the view's
        original -> view matrix. Drawn from the run's generator (:meth:`_draws`)."""
        for w in self.unsupervised:
            if w.loss.needs_second_view:
                frames2, m = w.loss.second_view(clip.frames, self._draws(clip.frames.device))
                feats = self.network.forward_features(frames2)
                out = self.network.forward_sequence(feats, clip.n_views)
                return out.decoders, m @ clip.matrix
        return None

    def unsupervised_losses(
        self,
        outputs: Sequence[HeadOutput],
        clip: UnlabeledClip,
        second: tuple[Sequence[HeadOutput], torch.Tensor] | None = None,
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each unsupervised loss on a clip's predictions (original-frame pixels), summed over
        the network's decoders: name -> (loss, activity (3,) as in ``LossTerms.activity``).
        ``second``: the decoders' outputs on a second view of the clip and its matrix."""
        out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for i, o in enumerate(outputs):
            inputs, coords_in = clip_inputs(o, clip, clip.matrix)
            if second is not None:
                inputs.second, coords2_in = clip_inputs(second[0][i], clip, second[1])
                in_view2 = warp_coords(coords_in.detach(), second[1])
                in_view1 = warp_coords(coords2_in.detach(), clip.matrix)
                inputs.in_both = wide(
                    in_frame(in_view2, clip.input_hw) & in_frame(in_view1, clip.input_hw),
                    clip.n_views,
                )
            for w in self.unsupervised:
                terms = w.loss(inputs)
                value, activity = terms.loss, terms.activity()
                if w.name in out:
                    value, activity = value + out[w.name][0], activity + out[w.name][1]
                out[w.name] = (value, activity)
        return out

    def _track(self, name: str, activity: torch.Tensor, relative: torch.Tensor) -> None:
        row = torch.cat([activity, relative.detach().float().reshape(1), activity.new_ones(1)])
        acc = self._epoch_activity.get(name)
        self._epoch_activity[name] = row if acc is None else acc + row

    def on_train_epoch_end(self) -> None:
        # Kept on the device: reading it here would make every epoch boundary wait for the GPU.
        for name, acc in self._epoch_activity.items():
            self._device_history.setdefault(name, []).append(acc)
        self._epoch_activity = {}

    def _history(self) -> dict[str, list[list[float]]]:
        """activity_history with the epochs still on the device brought over (one sync)."""
        for name, rows in self._device_history.items():
            if rows:
                self.activity_history.setdefault(name, []).extend(torch.stack(rows).tolist())
        self._device_history = {}
        return self.activity_history

    def activity_summary(self) -> dict[str, dict[str, Any]]:
        """Per unsupervised loss: the share of terms whose hinge was active, the share counted
        (not gated off), the mean weighted size relative to the supervised loss, over the whole
        run and per epoch."""
        out: dict[str, dict[str, Any]] = {}
        for name, rows in self._history().items():
            if not rows:
                continue
            total = [sum(r[i] for r in rows) for i in range(5)]
            per_epoch = [
                {
                    "active_fraction": r[0] / max(r[2], 1.0),
                    "counted_fraction": r[1] / max(r[2], 1.0),
                    "relative_size": r[3] / max(r[4], 1.0),
                }
                for r in rows
            ]
            out[name] = {
                "active_fraction": total[0] / max(total[2], 1.0),
                "counted_fraction": total[1] / max(total[2], 1.0),
                "relative_size": total[3] / max(total[4], 1.0),
                "per_epoch": per_epoch,
            }
        return out

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["vidpose_activity"] = self._history()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.activity_history.update(checkpoint.get("vidpose_activity", {}))

    def compute_loss(
        self, batch: TrainBatch, ramp: torch.Tensor | float
    ) -> dict[str, torch.Tensor]:
        """One step's loss and what is logged about it, all device tensors (no host sync):
        ``loss`` (the total), ``supervised``, and per unsupervised loss ``<name>`` (its value),
        ``<name>/activity`` ((3,), as in ``LossTerms.activity``) and ``<name>/relative`` (its
        weighted size relative to the supervised loss).

        Args:
            batch: augmented labeled frames and, when semi-supervised, an augmented clip.
            ramp: the unsupervised weights' ramp factor (a device tensor inside a CUDA graph,
                so that it is read at every replay).
        """
        labeled, clip = batch.labeled, batch.unlabeled
        clip_frames = None
        if clip is not None:
            clip_frames = clip.frames if clip.n_views == 1 else clip.views_frames
        out_l, out_u = self.network.forward_train(labeled.as_windows(), clip_frames)
        sup = self._supervised(out_l.decoders, labeled)
        stats = {"supervised": sup}
        total = sup
        if clip is not None and out_u is not None:
            values = self.unsupervised_losses(out_u.decoders, clip, self._second_view(clip))
            for w in self.unsupervised:
                value, activity = values[w.name]
                weighted = w.weight * ramp * value
                total = total + weighted
                stats[w.name] = value.detach()
                stats[f"{w.name}/activity"] = activity
                stats[f"{w.name}/relative"] = weighted.detach() / sup.detach().clamp_min(1e-12)
        stats["loss"] = total
        return stats

    def configure_optimizers(self):
        opt, sched = self.optimizer_factory(self.parameters())
        if self.cuda_graphs:
            # Lightning steps the wrapper; the schedule drives the same parameter groups.
            opt = ReplayOptimizer(opt)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, sched.lr_lambdas[0])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_train_start(self) -> None:
        if self.cuda_graphs:
            inner = self._inner_optimizer()
            lr_to_tensors(inner, self.device)
            dm = self.trainer.datamodule
            self._graphs = StepGraphs(self._graph_step, generators=[dm.generator_on(self.device)])

    def on_train_end(self) -> None:
        self.release_graphs()
        if self._averager is not None:
            self._averager.close()
            self._averager = None

    def release_graphs(self) -> None:
        """Destroy the training step's CUDA graphs (done when training ends; needed before a
        multi-GPU run's process group is torn down, see :meth:`StepGraphs.close`)."""
        if self._graphs is not None:
            self._graphs.close()
            self._graphs = None
        if self._val_graphs is not None:
            self._val_graphs.close()
            self._val_graphs = None
        self._ahead.clear()

    def _draws(self, device: torch.device) -> torch.Generator | None:
        """The generator of this run's random draws in a step on ``device``: the data module's
        (seeded by ``training.seed``, registered with the step's CUDA graphs), so that nothing
        in a step draws from torch's global generators, which ensemble members training at once
        share. None outside a trainer (the default generator)."""
        dm = None if self._trainer is None else getattr(self._trainer, "datamodule", None)
        return dm.generator_on(device) if hasattr(dm, "generator_on") else None

    def _inner_optimizer(self) -> torch.optim.Optimizer:
        opt = self.optimizers()
        opt = getattr(opt, "optimizer", opt)  # LightningOptimizer -> the optimizer
        return opt.inner if isinstance(opt, ReplayOptimizer) else opt

    def _graph_step(
        self, tensors: dict[str, torch.Tensor], consts: tuple
    ) -> dict[str, torch.Tensor]:
        """The captured step: prepare the batch, losses, backward, optimizer update."""
        inner = self._inner_optimizer()
        inner.zero_grad(set_to_none=True)
        batch = self.trainer.datamodule.prepare_train(RawBatch.from_tensors(tensors, consts))
        stats = self.compute_loss(batch, tensors["ramp"])
        averager = self._gradient_averager()
        if averager is not None:
            averager.start()
        stats["loss"].backward()
        if averager is not None:
            averager.finish()
        inner.step()
        stats["loss"] = stats["loss"].detach()
        return stats

    def training_step(self, batch: RawBatch, batch_idx: int) -> torch.Tensor:
        """One optimizer step on a batch of labeled rows (and a clip): eagerly, or as a replay
        of the captured step (``cuda_graphs``). Manual optimization, so that the update can be
        inside the graph."""
        opt = self.optimizers()
        sched = self.lr_schedulers()
        ramp = ramp_weight(self.global_step / self.steps_per_epoch, self.ramp_epochs)
        stats: dict[str, torch.Tensor] = {}

        def closure() -> torch.Tensor:
            if self._graphs is not None:
                tensors, consts = batch.tensors_and_consts()
                tensors["ramp"] = self._ramp_tensor(ramp)
                stats.update(self._graphs(tensors, consts))
            else:
                opt.zero_grad()
                prepared = self.trainer.datamodule.prepare_train(batch)
                stats.update(self.compute_loss(prepared, ramp))
                averager = self._gradient_averager()
                if averager is not None:
                    averager.start()
                self.manual_backward(stats["loss"])
                if averager is not None:
                    averager.finish()
            return stats["loss"]

        opt.step(closure=closure)
        sched.step()
        if self._graphs is not None:
            self._bound_lead()
        self._after_step(stats, batch)
        return stats["loss"].detach()

    def _bound_lead(self) -> None:
        """Let the host run at most :data:`STEPS_AHEAD` steps ahead of the GPU, waiting with the
        GIL released. Unbounded, the host fills the stream's launch queue and then blocks inside
        a kernel launch *holding the GIL*: ensemble members trained at once in other threads
        (:mod:`vidpose.training.concurrent`) could then not queue their own steps, and the GPU
        ran one member's stream at a time (5 members took 4.3x one member's time, GPU 56% busy;
        ``bench/train_ensemble_concurrent.py``)."""
        done = torch.cuda.Event()
        done.record()
        self._ahead.append(done)
        if len(self._ahead) > STEPS_AHEAD:
            self._ahead.popleft().synchronize()  # releases the GIL while it waits

    def _gradient_averager(self) -> GradientAverager | None:
        """What averages the gradients over the processes during backward when the strategy
        leaves that to the step (:class:`~vidpose.training.ddp.StepSyncDDPStrategy`: multi-GPU
        with CUDA graphs); None otherwise."""
        strategy = None if self._trainer is None else self._trainer.strategy
        if self._averager is None and getattr(strategy, "averages_in_step", False):
            self._averager = GradientAverager(self.parameters(), self._trainer.world_size)
        return self._averager

    def _ramp_tensor(self, ramp: float) -> torch.Tensor:
        """The ramp as a device tensor, refilled in place (a kernel, not a host copy)."""
        if self._ramp is None:
            self._ramp = torch.zeros((), device=self.device)
        return self._ramp.fill_(ramp)

    def _after_step(self, stats: dict[str, torch.Tensor], batch: RawBatch) -> None:
        """Track each loss's activity (device adds) and, on logging steps, log (deferred: no
        wait for the GPU, see :mod:`vidpose.training.async_log`)."""
        for w in self.unsupervised:
            if w.name in stats:
                self._track(w.name, stats[f"{w.name}/activity"], stats[f"{w.name}/relative"])
        every = self._trainer.log_every_n_steps if self._trainer is not None else 1
        step = self.global_step  # counts this step
        if (step - 1) % max(1, every):
            return
        row: dict[str, torch.Tensor | float] = {
            "train/supervised": stats["supervised"],
            "train/loss": stats["loss"],
        }
        for w in self.unsupervised:
            if w.name in stats:
                activity = stats[f"{w.name}/activity"]
                row[f"train/{w.name}"] = stats[w.name]
                row[f"train/{w.name}_active"] = activity[0] / activity[2].clamp_min(1)
                row[f"train/{w.name}_relative"] = stats[f"{w.name}/relative"]
        if self.unsupervised and batch.clip is not None:
            row["train/ramp"] = ramp_weight((step - 1) / self.steps_per_epoch, self.ramp_epochs)
        row["epoch"] = float(self.current_epoch)
        self.metric_log.record(step, row)

    def configure_callbacks(self) -> list[L.Callback]:
        return [self.metric_log]

    def validation_step(self, batch: LabeledBatch, batch_idx: int) -> None:
        tensors = {k: v for k, v in vars(batch).items() if v is not None}  # LabeledBatch(**)
        if self._val_graphs is None and self.cuda_graphs and self.device.type == "cuda":
            self._val_graphs = StepGraphs(self._validation_sums, warmup=1)
        if self._val_graphs is not None:
            row = self._val_graphs(tensors)["row"]  # the graph's buffer: added or copied, not kept
        else:
            row = self._validation_sums(tensors, ())["row"]
        self._val_sums = row.clone() if self._val_sums is None else self._val_sums + row

    def _validation_sums(
        self, tensors: dict[str, torch.Tensor], consts: tuple
    ) -> dict[str, torch.Tensor]:
        """One validation batch's [error sum, labeled keypoints, loss sum, frames] (device)."""
        batch = LabeledBatch(**tensors)
        out = self.network.forward_windows(batch.as_windows())
        loss = self._supervised(out.decoders, batch)
        input_hw = batch.input_hw
        pred = input_to_orig(out.combined.coords.float(), batch.orig_hw[:, None, :], input_hw)
        target = input_to_orig(batch.keypoints.float(), batch.orig_hw[:, None, :], input_hw)
        # A labeled keypoint predicted as NaN (a diverged network) is infinitely wrong, not
        # missing: the error must get worse, so that checkpointing and early stopping see it.
        err = pixel_error(pred, target).nan_to_num(torch.inf)
        visible = batch.visible
        row = torch.stack(
            [
                torch.where(visible, err, 0.0).sum(),
                visible.sum().float(),
                loss.detach().float() * batch.batch_size,
                torch.full((), float(batch.batch_size), device=loss.device),
            ]
        )
        return {"row": row}

    def on_validation_epoch_start(self) -> None:
        if self.trainer.world_size > 1:
            # Every process validates rank 0's model: the one its checkpoints hold.
            broadcast_buffers(self.network)

    def on_validation_epoch_end(self) -> None:
        # Summed on the device over the batches and logged once: no batch waits for the GPU.
        # No labeled keypoint at all gives NaN, which never counts as an improvement.
        s = self._val_sums if self._val_sums is not None else torch.zeros(4, device=self.device)
        self._val_sums = None
        # Each process validated its share of the frames: summed over all of them, the metrics
        # are those of one device, the same in every process (so are the best weights and early
        # stopping, which decide from them).
        s = self.trainer.strategy.reduce(s, reduce_op="sum")
        # For callbacks (best weights, early stopping) as device tensors; for the loggers
        # through the deferred log.
        self.log("val/loss", s[2] / s[3], logger=False)
        self.log("val/pixel_error", s[0] / s[1], logger=False)
        metrics = self.trainer.callback_metrics
        self.metric_log.record(
            self.global_step,
            {
                "val/loss": metrics["val/loss"],
                "val/pixel_error": metrics["val/pixel_error"],
                "epoch": float(self.current_epoch),
            },
        )
