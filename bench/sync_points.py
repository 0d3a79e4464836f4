"""Where a training step waits for the GPU: CUDA synchronisations per step, by source line.

    python bench/sync_points.py [--project ../shared/data/mirror-mouse-example] [--steps 40]
        [--losses temporal,pca_singleview] [key=value ...] [--out JSON]

Trains for ``--steps`` steps (ResNet-50, 256 px, batch 16, like train_mirror_mouse.py) with
``torch.cuda.set_sync_debug_mode("warn")`` on from the 10th step, and reports every warned
synchronisation grouped by the innermost stack frame outside torch (file:line), with counts
per step. A step without synchronisations lets the CPU queue work ahead of the GPU; each one
makes the step take CPU time + GPU time instead of the larger of the two. Needs CUDA.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_mirror_mouse import DEFAULT_PROJECT, project_with_settings
from vidpose.training import train

ROOTS = ("/torch/", "/lightning/", "/kornia/", "/warnings.py", "/contextlib.py")


class SyncDebug(L.Callback):
    def __init__(self, start: int) -> None:
        self.start = start
        self.steps = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.start:
            torch.cuda.set_sync_debug_mode("warn")
        if trainer.global_step >= self.start:
            self.steps += 1

    def on_train_end(self, trainer, module):
        torch.cuda.set_sync_debug_mode(0)


def where(stack: list[traceback.FrameSummary]) -> str:
    """Innermost frame outside torch/lightning/kornia, plus the library frame it called."""
    for i in range(len(stack) - 1, -1, -1):
        f = stack[i]
        if not any(r in f.filename for r in ROOTS):
            lib = stack[i + 1] if i + 1 < len(stack) else f
            return f"{f.filename.split('/src/')[-1]}:{f.lineno} ({f.line}) -> {lib.name}"
    return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, default=DEFAULT_PROJECT)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--losses", default="")
    ap.add_argument("--out", type=Path, default=Path("bench/results/sync_points.json"))
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("needs CUDA", file=sys.stderr)
        return 1
    counts: collections.Counter[str] = collections.Counter()
    original = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):
        if "synchroniz" in str(message).lower():
            counts[where(traceback.extract_stack()[:-1])] += 1
        else:
            original(message, category, filename, lineno, file, line)

    overrides = [
        "model.backbone=resnet50",
        "model.pretrained=false",
        "data.image_height=256",
        "data.image_width=256",
        "data.val_fraction=0.1",
        "data.test_fraction=0.1",
        "training.batch_size=16",
        f"training.max_steps={args.steps}",
        "training.steps_per_epoch=1000",
        *([f"model.losses=[{args.losses}]"] if args.losses else []),
        *args.overrides,
    ]
    cb = SyncDebug(start=10)
    warnings.showwarning = record
    warnings.simplefilter("always")
    with tempfile.TemporaryDirectory() as tmp:
        project = project_with_settings(args.project, Path(tmp) / "project")
        train(project, overrides, model_dir=Path(tmp) / "m", progress=False, callbacks=[cb])
    warnings.showwarning = original
    steps = max(cb.steps, 1)
    rows = [{"where": k, "per_step": v / steps} for k, v in counts.most_common()]
    for r in rows:
        print(f"{r['per_step']:7.2f}/step  {r['where']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"steps": steps, "overrides": overrides, "syncs": rows}, indent=1)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
