"""Train on the mirror-mouse example with a fixed split and budget; report test pixel error.

    uv run python bench/train_mirror_mouse.py [--project ../shared/data/mirror-mouse-example]
        [--epochs 100] [--backbone resnet50] [--size 256] [--batch-size 16] [--steps-per-epoch 16]
        [--losses temporal,pca_multiview,pca_singleview] [key=value ...]

Split: seed 0, 80/10/10 (72/9/9 frames). From scratch (model.pretrained=false). Writes JSON with
the test/val/train pixel errors, seconds per epoch, steps and the device.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from vidpose.training import train

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PROJECT = REPO.parent / "shared" / "data" / "mirror-mouse-example"

# What the labels cannot say about the mirror-mouse rig: the bottom half of each frame is a
# mirror view of the top half; the obstacle markers are not body parts.
BODY = ["paw1LH", "paw2LF", "paw3RF", "paw4RH", "tailBase", "tailMid", "nose"]
MIRROR_SETTINGS = {
    "views": ["top", "bot"],
    "view_matches": [[f"{b}_top", f"{b}_bot"] for b in BODY],
    "pca_keypoints": [f"{b}_{v}" for v in ("top", "bot") for b in BODY],
}


def split_overrides(backbone: str, size: int, batch_size: int) -> list[str]:
    """The settings every mirror-mouse bench shares: ``backbone`` from scratch at ``size`` px
    square, batch ``batch_size``, split seed 0, 80/10/10."""
    return [
        f"model.backbone={backbone}",
        "model.pretrained=false",
        f"data.image_height={size}",
        f"data.image_width={size}",
        "data.val_fraction=0.1",
        "data.test_fraction=0.1",
        "data.split_seed=0",
        f"training.batch_size={batch_size}",
    ]


def lp_overrides(steps_per_epoch: int) -> list[str]:
    """Lightning Pose's mirror-mouse setting: ResNet-50 from scratch at 256x256, batch 16,
    100 epochs of ``steps_per_epoch`` steps, split seed 0, 80/10/10."""
    return [
        *split_overrides("resnet50", 256, 16),
        "training.max_epochs=100",
        f"training.steps_per_epoch={steps_per_epoch}",
    ]


def project_with_settings(src: Path, dst: Path) -> Path:
    """A copy of ``src`` (labels copied, images and videos linked) with MIRROR_SETTINGS."""
    import yaml

    dst.mkdir(parents=True)
    shutil.copy(src / "CollectedData.csv", dst / "CollectedData.csv")
    for sub in ("labeled-data", "videos"):
        (dst / sub).symlink_to((src / sub).resolve(), target_is_directory=True)
    (dst / "vidpose.yaml").write_text(yaml.safe_dump(MIRROR_SETTINGS, sort_keys=False))
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, default=DEFAULT_PROJECT)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument(
        "--steps-per-epoch",
        type=int,
        default=16,
        help="16 x 100 epochs = the 1,600-step budget of the Lightning Pose figures",
    )
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument(
        "--losses",
        default="",
        help="unsupervised losses, e.g. temporal,pca_multiview,pca_singleview",
    )
    ap.add_argument("--out", type=Path, default=Path("bench/results/train_mirror_mouse.json"))
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)

    overrides = [
        *split_overrides(args.backbone, args.size, args.batch_size),
        f"training.max_epochs={args.epochs}",
        f"training.steps_per_epoch={args.steps_per_epoch}",
        *args.overrides,
    ]
    if args.losses:
        overrides.append(f"model.losses=[{args.losses}]")
    with tempfile.TemporaryDirectory() as tmp:
        project = project_with_settings(args.project, Path(tmp) / "project")
        model_dir = args.model_dir or Path(tmp) / "model"
        res = train(project, overrides, model_dir=model_dir, progress=False)
    m = res.metrics
    out = {
        "benchmark": "train_mirror_mouse",
        "overrides": overrides,
        "device": torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "epochs": args.epochs,
        "losses": args.losses.split(",") if args.losses else [],
        "steps": res.steps,
        "train_seconds": res.train_seconds,
        "seconds_per_epoch": m["seconds_per_epoch"],
        "ms_per_step": 1000 * res.train_seconds / max(1, res.steps),
        **{
            f"{s}_pixel_error_{k}": m[s][f"pixel_error_{k}"]
            for s in ("train", "val", "test")
            if s in m
            for k in ("mean", "median", "p95")
        },
    }
    print(json.dumps(out, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
