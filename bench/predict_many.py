"""Prediction throughput end to end (decode -> network -> CSV on disk), one video and many.

    python bench/predict_many.py --video VIDEO [--model MODEL_DIR | --project DIR]
        [--copies 20] [--readers pyav,nvdec] [--jobs 6] [--batch-size 256] [--ensemble 5]
        [--out JSON]

Without --model, trains the mirror-mouse model of bench/train_speed.py (ResNet-50, 256 px,
500 steps supervised) first. Measures:
- ``many``: ``vidpose.predict_videos`` on ``--copies`` links to the video (each a separate
  video to decode), per reader: wall time from the call to the last CSV written, aggregate
  frames/s;
- ``cli``: ``vidpose predict MODEL VIDEO`` as a user runs it (a new process), wall time from
  process start to CSV, and the start-up: a new process importing what ``vidpose predict``
  imports before it reads the model;
- ``decode_only``: the same videos decoded by ``--jobs`` threads without a model (the ceiling
  the decoders put on ``many``), and ``model_only``: replays of the prediction graph on one
  batch already on the device (the ceiling the network puts on it);
- ``--profile DIR``: the CLI run under cProfile (``DIR/cli.prof``, top entries printed) and the
  ensemble prediction too (``DIR/ensemble.prof``);
- ``ensemble`` (``--ensemble N``): trains N members (500 steps each, ``vidpose train --seeds``)
  timing the whole ensemble against one member's ``train()`` call, then predicts the video
  with the ensemble (every member + Kalman smoothing).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vidpose
from train_mirror_mouse import DEFAULT_PROJECT, lp_overrides, project_with_settings
from vidpose.training import train

TRAIN = lp_overrides(5)  # supervised, 500 steps


def n_frames(video: Path) -> int:
    from vidpose.video import probe_video

    return probe_video(video).n_frames


def cli(args: list[str], profile: Path | None = None) -> float:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    prof = ["-m", "cProfile", "-o", str(profile)] if profile else []
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *prof, "-m", "vidpose.cli", *args], check=True, env=env)
    return time.perf_counter() - t0


def set_decoders(model_dir: Path, value: str) -> None:
    """Set ``predict.decoders`` in a model directory's saved config."""
    import yaml

    path = Path(model_dir) / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg.setdefault("predict", {})["decoders"] = value
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def set_predict(model_dir: Path, settings: str) -> dict:
    """Set ``predict.*`` keys of a model directory's saved config from ``"k=v,k=v"`` (values
    read as YAML: ``batch_size=256,compile=true``); the settings as set."""
    import yaml

    if not settings:
        return {}
    values = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in settings.split(","))}
    path = Path(model_dir) / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg.setdefault("predict", {}).update(values)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return values


def show_profile(path: Path, n: int = 45) -> None:
    import pstats

    stats = pstats.Stats(str(path))
    stats.sort_stats("cumulative").print_stats(r"^(?!.*(importlib|<frozen)).*$", n)


def decode_only(videos: list[Path], reader: str, jobs: int, batch_size: int) -> dict:
    """Decode every video (``jobs`` at a time, one thread each) to host frames; frames/s."""
    from concurrent.futures import ThreadPoolExecutor

    from vidpose.video import open_video

    def one(path: Path) -> int:
        n = 0
        with open_video(path, reader=reader) as vr:
            for batch in vr.iter_batches(batch_size):
                n += len(batch.indices)
        return n

    t0 = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        frames = sum(pool.map(one, videos))
    wall = time.perf_counter() - t0
    return {"reader": reader, "jobs": jobs, "frames": frames, "seconds": wall, "fps": frames / wall}


def model_only(model_dir: Path, batch_size: int, hw: tuple[int, int], seconds: float = 5.0):
    """Frames/s of the captured prediction graph (upload excluded) on one uint8 batch."""
    from vidpose.predict.predictor import _Members, load_model

    members = _Members([load_model(model_dir)])
    frames = torch.randint(0, 255, (batch_size, *hw, 3), dtype=torch.uint8, device="cuda")
    return {"batch_size": batch_size, "fps": replay_fps(members, frames, seconds)}


def replay_fps(members, frames: torch.Tensor, seconds: float) -> float:
    """Frames/s of ``members.infer`` on ``frames`` (already on the GPU) over ``seconds``,
    after 3 warm-up calls."""
    n = frames.shape[0]
    for _ in range(3):
        members.infer(frames, n)
    torch.cuda.synchronize()
    k, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        members.infer(frames, n)
        k += n
    torch.cuda.synchronize()
    return k / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--project", type=Path, default=DEFAULT_PROJECT)
    ap.add_argument("--copies", type=int, default=20)
    ap.add_argument("--readers", default="pyav")
    ap.add_argument("--jobs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--ensemble", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--save-model", type=Path, default=None, help="train the model here")
    ap.add_argument("--profile", type=Path, default=None, help="cProfile output folder")
    ap.add_argument(
        "--decoders", default="auto", help="predict.decoders values, e.g. threads,processes"
    )
    ap.add_argument("--skip-decode-only", action="store_true")
    args = ap.parse_args(argv)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    out: dict = {
        "benchmark": "predict_many",
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "video": args.video.name,
        "frames_per_video": n_frames(args.video),
        "batch_size": args.batch_size,
        "jobs": args.jobs,
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model
        project = project_with_settings(args.project, tmp / "project")
        if model is None:
            t0 = time.perf_counter()
            res = train(project, TRAIN, model_dir=args.save_model or tmp / "model", progress=False)
            out["train_call_seconds"] = time.perf_counter() - t0
            out["train_fit_seconds"] = res.train_seconds
            model = res.model_dir
        videos = []
        (tmp / "videos").mkdir()
        for i in range(args.copies):
            v = tmp / "videos" / f"v{i:02d}{args.video.suffix}"
            v.symlink_to(args.video.resolve())
            videos.append(v)
        frames = out["frames_per_video"] * len(videos)
        out["many"] = {}
        runs = [(r, d) for r in args.readers.split(",") for d in args.decoders.split(",")]
        for reader, decoders in runs:
            set_decoders(model, decoders)
            t0 = time.perf_counter()
            res = vidpose.predict_videos(
                model,
                videos,
                tmp / f"out_{reader}_{decoders}",
                batch_size=args.batch_size,
                reader=reader,
                jobs=args.jobs,
            )
            wall = time.perf_counter() - t0
            row = {
                "videos": len(videos),
                "frames": frames,
                "seconds": wall,
                "fps": frames / wall,
                "failed": {str(k): v for k, v in res.failed.items()},
            }
            out["many"][f"{reader}/{decoders}"] = row
            print(f"{reader}/{decoders}", json.dumps(row), flush=True)
        set_decoders(model, "auto")
        reader = args.readers.split(",")[0]
        if not args.skip_decode_only:
            out["decode_only"] = decode_only(videos, reader, args.jobs, args.batch_size)
            print("decode_only", json.dumps(out["decode_only"]), flush=True)
        if torch.cuda.is_available():
            from vidpose.video import probe_video

            info = probe_video(args.video)
            out["model_only"] = model_only(model, args.batch_size, (info.height, info.width))
            print("model_only", json.dumps(out["model_only"]), flush=True)
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import vidpose.cli, vidpose.predict.run, vidpose.video"],
            check=True,
        )
        import_s = time.perf_counter() - t0
        one = cli(
            [
                "predict",
                str(model),
                str(args.video),
                "--out",
                str(tmp / "cli"),
                "--no-progress",
                "--reader",
                reader,
                "--batch-size",
                str(args.batch_size),
            ],
            args.profile / "cli.prof" if args.profile else None,
        )
        if args.profile:
            show_profile(args.profile / "cli.prof")
        out["cli"] = {
            "reader": reader,
            "import_seconds": import_s,
            "one_video_seconds": one,
            "one_video_fps": out["frames_per_video"] / one,
        }
        print("cli", json.dumps(out["cli"]), flush=True)
        if args.ensemble:
            seeds = list(range(args.ensemble))
            t0 = time.perf_counter()
            train(project, [*TRAIN, "training.seed=0"], model_dir=tmp / "one", progress=False)
            one_member = time.perf_counter() - t0
            t0 = time.perf_counter()
            vidpose.train_ensemble(project, seeds, tmp / "ens", TRAIN, progress=False)
            whole = time.perf_counter() - t0
            import cProfile

            prof = cProfile.Profile() if args.profile else None
            t0 = time.perf_counter()
            if prof:
                prof.enable()
            res = vidpose.predict_videos(
                tmp / "ens",
                [args.video],
                tmp / "ens_out",
                batch_size=args.batch_size,
                reader=reader,
            )
            pred = time.perf_counter() - t0
            if prof:
                prof.disable()
                prof.dump_stats(str(args.profile / "ensemble.prof"))
                show_profile(args.profile / "ensemble.prof", 30)
            out["ensemble"] = {
                "members": len(seeds),
                "one_member_train_call_seconds": one_member,
                "ensemble_train_seconds": whole,
                "ratio": whole / one_member,
                "predict_and_smooth_seconds": pred,
                "predict_and_smooth_fps": out["frames_per_video"] / pred,
                "failed": {str(k): v for k, v in res.failed.items()},
            }
            print("ensemble", json.dumps(out["ensemble"]), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
