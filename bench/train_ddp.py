"""Training on two GPUs against one: images/s and test error at the same per-GPU batch.

    python3 bench/train_ddp.py --project ../shared/data/mirror-mouse-example \\
        --out bench/results/train_ddp_h100x2.json
    python3 bench/train_ddp.py --tiny --out /tmp/train_ddp_cpu.json   # CPU check, 2 gloo processes

Mirror-mouse, ResNet-50 from scratch at 256x256, 16 frames per GPU and step, split seed 0
(80/10/10, as bench/train_mirror_mouse.py). Every run trains on the same number of labeled frames
(``--samples``, default 25,600: 1,600 steps of 16 on one GPU, 800 steps of 32 on two), with the
learning-rate schedule at the same fractions of the run and validation at the same points (an
epoch is 160 frames: 10 steps on one GPU, 5 on two). ``training.lr`` is the same in every run
(vidpose does not scale it with the number of devices). Runs, on CUDA: one GPU with CUDA graphs
(the default) and two GPUs with CUDA graphs (the gradient all-reduce captured in the step), one
GPU and two GPUs eager (DistributedDataParallel's hooks); ``--runs`` picks some of them;
on CPU: one process and two.

"steps images/s" counts the frames of the training steps after the first ``--skip`` over the time
they took (validation left out; rank 0's clock, synchronised with the GPU at each end); "fit
images/s" is all frames over ``train_seconds`` (``trainer.fit``, validation and start-up in).
``--tiny``: ResNet-18 at 64x64, 4 frames per device and step, 64 frames in all.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_mirror_mouse import DEFAULT_PROJECT, REPO, split_overrides


class StepClock(L.Callback):
    """Seconds spent in training steps after the first ``skip`` (validation excluded), written
    by rank 0 to ``path`` as ``{"steps": n, "seconds": s}``."""

    def __init__(self, path: Path, skip: int) -> None:
        self.path = str(path)
        self.skip = skip
        self.steps = 0
        self.seconds = 0.0
        self._since: float | None = None

    def _now(self, module: L.LightningModule) -> float:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)
        return time.perf_counter()

    def _pause(self, module: L.LightningModule) -> None:
        if self._since is not None:
            self.seconds += self._now(module) - self._since
            self._since = None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step >= self.skip and self._since is None:
            self._since = self._now(module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self._since is not None:
            self.steps += 1

    def on_validation_start(self, trainer, module):
        self._pause(module)

    def on_train_end(self, trainer, module):
        self._pause(module)
        if trainer.is_global_zero:
            Path(self.path).write_text(json.dumps({"steps": self.steps, "seconds": self.seconds}))


def overrides(args: argparse.Namespace, devices: int, graphs: str) -> list[str]:
    per_epoch = args.batch_size * args.epoch_steps  # frames per epoch, the same for every run
    if per_epoch % (args.batch_size * devices) or args.samples % per_epoch:
        raise SystemExit("--samples and --epoch-steps must give whole epochs of whole steps")
    return [
        *split_overrides(args.backbone, args.size, args.batch_size),
        f"training.devices={devices}",
        f"training.steps_per_epoch={per_epoch // (args.batch_size * devices)}",
        f"training.max_epochs={args.samples // per_epoch}",
        f"training.cuda_graphs={graphs}",
        *args.overrides,
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, default=DEFAULT_PROJECT)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "train_ddp.json")
    ap.add_argument("--tiny", action="store_true", help="ResNet-18, 64 px, 64 frames (CPU)")
    ap.add_argument("--backbone", default=None, help="default resnet50 (--tiny: resnet18)")
    ap.add_argument("--size", type=int, default=None, help="input px (default 256, --tiny: 64)")
    ap.add_argument("--samples", type=int, default=None, help="labeled frames per run")
    ap.add_argument("--batch-size", type=int, default=None, help="frames per device and step")
    ap.add_argument("--epoch-steps", type=int, default=None, help="steps of an epoch on 1 GPU")
    ap.add_argument("--skip", type=int, default=None, help="warm-up steps left out of steps/s")
    ap.add_argument("--runs", default=None, help="which runs, by number (default all), e.g. 0,1")
    ap.add_argument("overrides", nargs="*", help="more config overrides (key=value)")
    args = ap.parse_args(argv)
    tiny = dict(backbone="resnet18", size=64, samples=64, batch_size=4, epoch_steps=4, skip=2)
    full = dict(backbone="resnet50", size=256, samples=25_600, batch_size=16, epoch_steps=10)
    for key, value in ({**full, "skip": 20} if not args.tiny else tiny).items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    # The training processes unpickle StepClock by its module's name, which __main__ is not.
    from train_ddp import StepClock as Clock

    cuda = torch.cuda.is_available()
    runs_wanted = (
        [
            ("1 GPU, CUDA graphs", 1, "null"),
            ("2 GPUs, CUDA graphs", 2, "null"),
            ("1 GPU, eager", 1, "false"),
            ("2 GPUs, eager", 2, "false"),
        ]
        if cuda
        else [("1 process", 1, "null"), ("2 processes", 2, "null")]
    )
    if args.runs:
        runs_wanted = [r for i, r in enumerate(runs_wanted) if str(i) in args.runs.split(",")]
    if cuda and torch.cuda.device_count() < 2:
        raise SystemExit(f"2 GPUs needed, {torch.cuda.device_count()} visible")
    from vidpose.training import train

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, devices, graphs) in enumerate(runs_wanted):
            clock_path = Path(tmp) / f"clock{i}.json"
            cfg = overrides(args, devices, graphs)
            if not cuda:
                cfg.append("training.device=cpu")
            t0 = time.perf_counter()
            res = train(
                args.project,
                cfg,
                model_dir=Path(tmp) / f"model{i}",
                progress=False,
                callbacks=[Clock(clock_path, args.skip)],
            )
            call_seconds = time.perf_counter() - t0
            clock = json.loads(clock_path.read_text())
            m = res.metrics
            frames_per_step = args.batch_size * devices
            run = {
                "name": name,
                "devices": devices,
                "cuda_graphs": graphs,
                "overrides": cfg,
                "steps": res.steps,
                "frames_per_step": frames_per_step,
                "frames": res.steps * frames_per_step,
                "steps_images_per_s": clock["steps"] * frames_per_step / clock["seconds"],
                "ms_per_step": 1000 * clock["seconds"] / max(1, clock["steps"]),
                "fit_images_per_s": res.steps * frames_per_step / res.train_seconds,
                "train_seconds": res.train_seconds,
                "train_call_seconds": call_seconds,
                **{
                    f"{s}_pixel_error_{k}": m[s][f"pixel_error_{k}"]
                    for s in ("val", "test")
                    if s in m
                    for k in ("mean", "median")
                },
            }
            print(json.dumps(run), flush=True)
            runs.append(run)
    # each multi-device run over the one-device run of the same kind (graphs / eager), and
    # over the fastest one-device run
    ones = [r for r in runs if r["devices"] == 1]
    speedups = {}
    for r in runs:
        if r["devices"] == 1:
            continue
        same = [o for o in ones if o["cuda_graphs"] == r["cuda_graphs"]]
        if same:
            speedups[f"{r['name']} / {same[0]['name']}"] = (
                r["steps_images_per_s"] / same[0]["steps_images_per_s"]
            )
        if ones:
            best = max(ones, key=lambda o: o["steps_images_per_s"])
            speedups[f"{r['name']} / {best['name']}"] = (
                r["steps_images_per_s"] / best["steps_images_per_s"]
            )
    out = {
        "benchmark": "train_ddp",
        "project": str(args.project),
        "samples": args.samples,
        "skip": args.skip,
        "device": (
            f"{torch.cuda.device_count()} x {torch.cuda.get_device_name()}"
            if cuda
            else f"cpu ({platform.processor() or platform.machine()})"
        ),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "runs": runs,
        "speedup": speedups,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"speed-ups: {json.dumps(speedups, indent=1)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
