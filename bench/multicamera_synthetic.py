"""3D on a synthetic 3-camera rig against the 3D truth: per-camera models vs one model over all
cameras, with and without the cross-camera losses, raw and smoothed in 3D.

    uv run python bench/multicamera_synthetic.py --tiny \\
        --out bench/results/multicamera_synthetic_cpu_tiny.json          # CPU check
    uv run python bench/multicamera_synthetic.py --seeds 0,1,2 \\
        --out bench/results/multicamera_synthetic_h100.json              # GPU, ResNet-50

For each seed: synthesize a 3-camera project of 3 sessions (``--frames`` frames each, square
frames of ``--size`` px, ``--labeled`` labeled frames per session, the same frames in every
view). Session 0 is labeled; session 1 is an unlabeled video (its labels dropped); session 2
is the test session (labels and videos held out of training). Then, with the same seed and the
same number of steps per model (``--steps``, batch ``training.batch_size``):

- ``per_camera``: one single-camera model per camera, each trained on its camera's labels and
  videos only (:func:`write_view_projects`: the way a user without multi-camera support works);
- ``joint``: one model over all cameras (the multi-camera project; every camera's labels),
  supervised;
- ``joint_multiview``: the same with the cross-camera losses on synchronized unlabeled clips
  (``--losses``, default ``pca_multiview`` + ``reprojection``; ``--loss-overrides`` for their
  settings).

Each arm predicts the test session's video of every camera and triangulates the three tables
(``vidpose.triangulate_tables``: outliers dropped at 20 px, likelihood >= ``--min-confidence``),
raw and Kalman-smoothed in 3D (``vidpose.smooth_points_3d``), compared with
``ground_truth/<test>_3d.csv``.

Reported per seed and pooled over seeds (keypoint-frames that at least 2 cameras see, by the
2D ground truth's visibility): 3D error (mm; median, p95) and the share triangulated; the
median reprojection error (px); the share of frames (those with a keypoint seen by 2 views)
whose views disagree by more than 10 px before outlier removal; each camera's 2D error (px,
visible keypoints). The 2D ground truth triangulated the same way (``oracle``) checks the
pipeline (error ~0 mm); the 2D ground truth plus white noise of ``--noise-px``
(``truth_2d_plus_noise``) shows what 3D smoothing gains on errors independent from frame to
frame, and ``error_lag1_autocorr`` how far the models' errors are from that.

``--tiny``: ResNet-18 from scratch at 128 px, 150 steps of 8 frames (CPU). Default: the default
ResNet-50 config (from scratch unless ``--pretrained``; the device hosts are offline), 192 px,
1000 steps.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import vidpose
from vidpose.io import Points3D, Poses, read_points_3d, read_poses, write_poses
from vidpose.predict import load_model
from vidpose.project.settings import SETTINGS_FILE, ProjectSettings, dump_settings, load_settings
from vidpose.smooth import smooth_points_3d
from vidpose.synthetic import MultiCameraProject, synthesize_multicamera_project
from vidpose.training import train

DISAGREE_PX = 10.0


def write_view_projects(
    proj: MultiCameraProject, out_dir: Path, labeled: list[str], videos: list[str]
) -> dict[str, Path]:
    """One single-view project per camera, ``out_dir/<view>``: that camera's label rows and
    labeled frames of the ``labeled`` sessions, its videos of the ``videos`` sessions, and the
    multi-camera project's skeleton, flip pairs and PCA keypoints (no views, no calibration)."""
    settings = load_settings(proj.project_dir)
    single = ProjectSettings(
        skeleton=settings.skeleton,
        flip_pairs=settings.flip_pairs,
        pca_keypoints=settings.pca_keypoints,
    )
    out = {}
    for view in proj.views:
        root = out_dir / view
        labels = read_poses(proj.labels[view])
        folders = [f"labeled-data/{s}_{view}/" for s in labeled]
        keep = [i for i, f in enumerate(labels.frames) if f.startswith(tuple(folders))]
        write_poses(labels.select_frames(keep), root / "CollectedData.csv")
        for folder in folders:
            shutil.copytree(proj.project_dir / folder, root / folder)
        (root / "videos").mkdir(exist_ok=True)
        for s in videos:
            shutil.copy2(proj.video(s, view), root / "videos" / f"{s}_{view}.mp4")
        (root / SETTINGS_FILE).write_text(dump_settings(single))
        out[view] = root
    return out


def _stat(values: np.ndarray, q: float) -> float:
    """The q-th percentile of the finite values; NaN when there are none."""
    values = values[np.isfinite(values)]
    return float(np.percentile(values, q)) if values.size else float("nan")


def score_3d(points: Points3D, truth: Points3D, seen2: np.ndarray) -> dict[str, float]:
    """3D error (mm) over the keypoint-frames ``seen2`` (N, K) that were triangulated."""
    err = np.linalg.norm(points.points - truth.points, axis=-1)[seen2]
    return {
        "median_mm": _stat(err, 50),
        "p95_mm": _stat(err, 95),
        "triangulated": float(np.isfinite(err).sum() / max(err.size, 1)),
    }


def lag1_autocorr(points: Points3D, truth: Points3D, seen2: np.ndarray) -> float:
    """Median over keypoints and axes of the lag-1 autocorrelation of the 3D error (frames
    where ``seen2``): near 1, errors drift slowly and no temporal smoother can remove them."""
    d = np.where(seen2[..., None], points.points - truth.points, np.nan)
    a, b = d[:-1], d[1:]
    ok = np.isfinite(a) & np.isfinite(b)
    corr = []
    for k in range(d.shape[1]):
        for c in range(3):
            m = ok[:, k, c]
            if m.sum() > 10:
                corr.append(np.corrcoef(a[m, k, c], b[m, k, c])[0, 1])
    return float(np.median(corr)) if corr else float("nan")


def white_noise(tables: dict, noise_px: float, seed: int) -> dict:
    """The tables with independent Gaussian noise of ``noise_px`` px per coordinate."""
    rng = np.random.default_rng(1000 + seed)
    out = {}
    for view, t in tables.items():
        coords = t.coords + rng.normal(0.0, noise_px, t.coords.shape)
        out[view] = Poses(coords, t.keypoints, t.frames, t.likelihood)
    return out


def summarize(result, truth: Points3D, seen2: np.ndarray, points: Points3D) -> dict:
    spread = result.spread_px
    solved = np.isfinite(spread).any(axis=1)  # frames with a keypoint seen by >= 2 views
    disagree = (spread > DISAGREE_PX).any(axis=1)[solved]
    return {
        **score_3d(points, truth, seen2),
        "reprojection_median_px": _stat(points.error_px, 50),
        "disagree_keypoint_frames": result.summary.disagree,
        "disagree_frames": float(disagree.mean()) if disagree.size else float("nan"),
        "few_views": result.summary.few_views,
        "dropped": result.summary.dropped,
    }


def write_joint_project(
    proj: MultiCameraProject, out: Path, labeled: list[str], videos: list[str]
) -> Path:
    """The multi-camera project with only ``labeled`` sessions' labels and ``videos``
    sessions' videos (a held-out session is in neither)."""
    root = out
    shutil.copytree(proj.project_dir, root, ignore=shutil.ignore_patterns("ground_truth"))
    for view in proj.views:
        table = read_poses(proj.labels[view])
        folders = tuple(f"labeled-data/{s}_{view}/" for s in labeled)
        keep = [i for i, f in enumerate(table.frames) if f.startswith(folders)]
        write_poses(table.select_frames(keep), root / proj.labels[view].name)
    for session in proj.sessions:
        for view in proj.views:
            if session not in labeled:
                shutil.rmtree(root / "labeled-data" / f"{session}_{view}")
            if session not in videos:
                (root / "videos" / proj.video(session, view).name).unlink()
    return root


def score_arm(
    models: dict[str, Path], proj: MultiCameraProject, session: str, args, seen2, tmp: Path
) -> dict:
    """Predict ``session``'s video of each camera with its model, triangulate, score."""
    truth = read_points_3d(proj.ground_truth_3d(session))
    truth_2d = {v: read_poses(proj.ground_truth(session, v)) for v in proj.views}
    preds, errors_2d, t_predict, loaded = {}, {}, 0.0, {}
    for view, model_dir in models.items():
        t0 = time.perf_counter()
        if model_dir not in loaded:
            loaded[model_dir] = load_model(model_dir)
        pred = loaded[model_dir].predict_video(proj.video(session, view))
        t_predict += time.perf_counter() - t0
        preds[view] = pred
        err = np.linalg.norm(pred.coords - truth_2d[view].coords, axis=-1)
        vis = truth_2d[view].likelihood == 1
        errors_2d[view] = {
            "median_px": _stat(err[vis], 50),
            "p95_px": _stat(err[vis], 95),
            "confident": float((pred.likelihood[vis] >= args.min_confidence).mean()),
        }
    result = vidpose.triangulate_tables(
        proj.calibration,
        preds,
        tmp / f"{session}_3d.csv",
        smoother=smooth_points_3d,
        min_confidence=args.min_confidence,
    )
    return {
        "view_2d": errors_2d,
        "median_2d_px": float(np.mean([e["median_px"] for e in errors_2d.values()])),
        "raw": summarize(result, truth, seen2, result.raw),
        "smoothed": summarize(result, truth, seen2, result.points),
        "error_lag1_autocorr": lag1_autocorr(result.raw, truth, seen2),
        "predict_seconds": t_predict,
        "_errors": {
            kind: np.linalg.norm(p.points - truth.points, axis=-1)[seen2].tolist()
            for kind, p in (("raw", result.raw), ("smoothed", result.points))
        },
    }


def run_seed(seed: int, args, overrides: list[str], tmp: Path) -> dict:
    t0 = time.perf_counter()
    proj = synthesize_multicamera_project(
        tmp / "rig",
        cameras=3,
        seed=seed,
        n_labeled=3 * args.labeled,
        n_videos=3,
        n_frames=args.frames,
        size=(args.size, args.size),
    )
    labeled_session, unlabeled_session, test_session = proj.sessions
    t_synth = time.perf_counter() - t0
    truth = read_points_3d(proj.ground_truth_3d(test_session))
    truth_2d = {v: read_poses(proj.ground_truth(test_session, v)) for v in proj.views}
    seen = np.stack([t.likelihood == 1 for t in truth_2d.values()], axis=-1)
    seen2 = seen.sum(-1) >= 2
    train_sessions = [labeled_session, unlabeled_session]
    seeded = [*overrides, f"training.seed={seed}"]

    arms: dict[str, dict] = {}
    seconds: dict[str, float] = {"synthesize": t_synth}
    if "per_camera" in args.arms:
        projects = write_view_projects(proj, tmp / "views", [labeled_session], train_sessions)
        models = {}
        t1 = time.perf_counter()
        for view, root in projects.items():
            models[view] = train(
                root, seeded, model_dir=tmp / f"m_{view}", progress=False
            ).model_dir
        seconds["train_per_camera"] = time.perf_counter() - t1
        arms["per_camera"] = score_arm(models, proj, test_session, args, seen2, tmp / "pc")
    joint = write_joint_project(proj, tmp / "joint", [labeled_session], train_sessions)
    for arm, extra in (
        ("joint", []),
        ("joint_multiview", [f"model.losses=[{args.losses}]", *args.loss_overrides]),
    ):
        if arm not in args.arms:
            continue
        t1 = time.perf_counter()
        res = train(joint, [*seeded, *extra], model_dir=tmp / f"m_{arm}", progress=False)
        seconds[f"train_{arm}"] = time.perf_counter() - t1
        models = dict.fromkeys(proj.views, res.model_dir)
        arms[arm] = score_arm(models, proj, test_session, args, seen2, tmp / arm)
        arms[arm]["unsupervised"] = {
            name: {k: v for k, v in a.items() if k != "per_epoch"}
            for name, a in res.metrics.get("unsupervised", {}).items()
        }

    kw = {"min_confidence": args.min_confidence}
    noisy = white_noise(truth_2d, args.noise_px, seed)
    noisy_result = vidpose.triangulate_tables(
        proj.calibration, noisy, smoother=smooth_points_3d, **kw
    )
    oracle = vidpose.triangulate_tables(proj.calibration, truth_2d, **kw)
    return {
        "seed": seed,
        "sessions": {
            "labeled": labeled_session,
            "unlabeled": unlabeled_session,
            "test": test_session,
        },
        "train_labels_per_camera": len(proj.labeled_frames[labeled_session]),
        "keypoint_frames_seen_by_2": int(seen2.sum()),
        "arms": arms,
        "oracle": score_3d(oracle.points, truth, seen2),
        "truth_2d_plus_noise": {
            "noise_px": args.noise_px,
            "raw": score_3d(noisy_result.raw, truth, seen2),
            "smoothed": score_3d(noisy_result.points, truth, seen2),
            "error_lag1_autocorr": lag1_autocorr(noisy_result.raw, truth, seen2),
        },
        "seconds": seconds,
    }


def pooled(runs: list[dict]) -> dict:
    """Per arm and kind (raw, smoothed): 3D errors pooled over seeds, other figures averaged;
    and each seed's median, so that seed-to-seed spread is visible."""
    out: dict = {}
    for arm in runs[0]["arms"]:
        out[arm] = {"median_2d_px": float(np.mean([r["arms"][arm]["median_2d_px"] for r in runs]))}
        for kind in ("raw", "smoothed"):
            e = np.array([x for r in runs for x in r["arms"][arm]["_errors"][kind]], dtype=float)
            out[arm][kind] = {
                "median_mm": _stat(e, 50),
                "p95_mm": _stat(e, 95),
                "median_mm_per_seed": [r["arms"][arm][kind]["median_mm"] for r in runs],
                **{
                    key: float(np.mean([r["arms"][arm][kind][key] for r in runs]))
                    for key in ("triangulated", "reprojection_median_px", "disagree_frames")
                },
            }
    noisy = [r["truth_2d_plus_noise"] for r in runs]
    out["truth_2d_plus_noise"] = {
        kind: {
            key: float(np.mean([n[kind][key] for n in noisy])) for key in ("median_mm", "p95_mm")
        }
        for kind in ("raw", "smoothed")
    }
    return out


def _public(run: dict) -> dict:
    """A run without the per-keypoint error lists (kept for pooling only)."""
    arms = {a: {k: v for k, v in r.items() if k != "_errors"} for a, r in run["arms"].items()}
    return {**run, "arms": arms}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="ResNet-18, 128 px, 150 steps (CPU)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    ap.add_argument("--steps", type=int, default=None, help="default 1000 (--tiny: 150)")
    ap.add_argument("--size", type=int, default=None, help="frame px (default 192, --tiny: 128)")
    ap.add_argument("--backbone", default=None, help="default resnet50 (--tiny: resnet18)")
    ap.add_argument("--pretrained", action="store_true", help="ImageNet weights (default none)")
    ap.add_argument("--labeled", type=int, default=60, help="labeled frames per session")
    ap.add_argument("--frames", type=int, default=300, help="frames per session")
    ap.add_argument("--min-confidence", type=float, default=0.5)
    ap.add_argument(
        "--arms",
        default="per_camera,joint,joint_multiview",
        help="which arms to run (comma-separated)",
    )
    ap.add_argument(
        "--losses",
        default="pca_multiview,reprojection",
        help="model.losses of joint_multiview (comma-separated)",
    )
    ap.add_argument(
        "--loss-overrides",
        nargs="*",
        default=[],
        help="extra overrides of joint_multiview, e.g. losses.reprojection.weight=0.05",
    )
    ap.add_argument(
        "--noise-px", type=float, default=2.0, help="white noise of the truth_2d_plus_noise check"
    )
    ap.add_argument("--out", type=Path, default=Path("bench/results/multicamera_synthetic.json"))
    ap.add_argument(
        "--keep", type=Path, default=None, help="keep projects, models and tables here (seed_N/)"
    )
    args = ap.parse_args(argv)
    args.steps = args.steps or (150 if args.tiny else 1000)
    args.size = args.size or (128 if args.tiny else 192)
    args.backbone = args.backbone or ("resnet18" if args.tiny else "resnet50")
    seeds = [int(s) for s in args.seeds.split(",")]
    args.arms = args.arms.split(",")
    overrides = [
        f"model.backbone={args.backbone}",
        f"model.pretrained={str(args.pretrained).lower()}",
        f"data.image_height={args.size}",
        f"data.image_width={args.size}",
        f"training.max_steps={args.steps}",
    ]
    if args.tiny:
        overrides += ["training.batch_size=8", "training.lr=2e-3", "training.scheduler=cosine"]
    t0 = time.perf_counter()
    runs = []
    for seed in seeds:
        if args.keep is not None:
            runs.append(run_seed(seed, args, overrides, args.keep / f"seed_{seed}"))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(run_seed(seed, args, overrides, Path(tmp)))
        print(json.dumps(_public(runs[-1]), indent=2), flush=True)
    out = {
        "benchmark": "multicamera_synthetic",
        "settings": {
            **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "seeds": seeds,
        },
        "overrides": overrides,
        "device": torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else platform.processor() or "cpu",
        "pooled": pooled(runs),
        "runs": [_public(r) for r in runs],
        "total_seconds": time.perf_counter() - t0,
    }
    print(json.dumps(out["pooled"], indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
