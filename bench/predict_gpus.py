"""Batch prediction on one GPU vs all GPUs of the machine (`vidpose predict`'s local engine).

    python bench/predict_gpus.py --video VIDEO [--model MODEL_DIR] [--copies 40] \\
        [--gpus 1,2] [--readers auto] [--timeout 240] [--predict batch_size=256,compile=true] \\
        [--out bench/results/predict_gpus_h100x2.json]

Without --model, trains the mirror-mouse model of bench/train_speed.py (ResNet-50, 256 px, 500
steps supervised) first; with --model DIR that does not exist yet, trains it into DIR (kept for
later runs, each a fresh process whose first run pays CUDA's start-up like a user's command).
Then, for each GPU count G of ``--gpus``: ``vidpose.predict_batch`` on
``--copies`` links to ``--video`` (each a separate video to decode) into a fresh output folder,
with ``workers=G`` (G = 1: in this process; G > 1: one worker process per GPU, each loading the
model once and taking videos from the shared queue, as ``vidpose predict`` does on a machine
with several GPUs). Reported: wall time from the call to the last table and the report written,
aggregate frames/s, videos ok/failed, and the ratio to one GPU, for each ``predict.decoders``
value of ``--decoders`` (set in the model's saved config). ``--engine ray``: the same batches
through Ray: G actors of one GPU each, on a local cluster started before the runs (as a
cluster's users join one that runs already; its start is reported as ``ray_start_seconds``).
The local engine's fork server (which starts decoder and GPU worker processes) is started
and warmed before the runs too, whatever their order (``fork_server_start_seconds``): else
the first run pays it alone (~5 s on the 2-H200 host). A user's ``vidpose predict`` pays it
beside its own imports; time that with the CLI, process start to exit, for each count.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vidpose
from predict_many import set_decoders, set_predict
from train_mirror_mouse import DEFAULT_PROJECT, lp_overrides, project_with_settings
from vidpose.training import train
from vidpose.video import probe_video

TRAIN = lp_overrides(5)  # supervised, 500 steps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--project", type=Path, default=DEFAULT_PROJECT)
    ap.add_argument("--copies", type=int, default=40)
    ap.add_argument("--gpus", default="1,2", help="GPU counts to run, e.g. 1,2")
    ap.add_argument("--jobs", type=int, default=None, help="videos decoded at once per worker")
    ap.add_argument(
        "--decoders", default="auto", help="predict.decoders values to run, e.g. auto,threads"
    )
    ap.add_argument(
        "--readers", default="auto", help="readers to run, e.g. nvdec,pyav (auto: the model's)"
    )
    ap.add_argument(
        "--engine",
        default="local",
        choices=["local", "ray"],
        help="ray: a local Ray cluster started here, one actor per GPU (vidpose[ray])",
    )
    ap.add_argument(
        "--predict",
        default="",
        help="predict.* settings written into the model's config for every run, e.g. "
        "batch_size=256,compile=true,fold_batchnorm=false",
    )
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds one run may take; a run past it is recorded as timed out and the bench "
        "stops there (the JSON keeps every row so far)",
    )
    args = ap.parse_args(argv)
    counts = [int(g) for g in args.gpus.split(",")]
    per_video = probe_video(args.video).n_frames
    out: dict = {
        "benchmark": "predict_gpus",
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "gpus_visible": torch.cuda.device_count(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "video": args.video.name,
        "frames_per_video": per_video,
        "copies": args.copies,
        "engine": args.engine,
        "runs": {},
    }
    cluster: contextlib.AbstractContextManager = contextlib.nullcontext()
    if args.engine == "ray":  # as on a cluster that runs already: its start is timed apart
        from vidpose.predict.ray_engine import ray_session

        cluster = ray_session(None)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        t0 = time.perf_counter()
        stack.enter_context(cluster)
        if args.engine == "ray":
            out["ray_start_seconds"] = round(time.perf_counter() - t0, 2)
        else:
            t0 = time.perf_counter()
            _warm_fork_server()
            out["fork_server_start_seconds"] = round(time.perf_counter() - t0, 2)
        tmp = Path(tmp)
        model = args.model
        if model is None or not model.exists():
            project = project_with_settings(args.project, tmp / "project")
            t0 = time.perf_counter()
            target = model or tmp / "model"
            model = train(project, TRAIN, model_dir=target, progress=False).model_dir
            out["train_call_seconds"] = time.perf_counter() - t0
        out["predict_settings"] = set_predict(model, args.predict)
        (tmp / "videos").mkdir()
        videos = []
        for i in range(args.copies):
            v = tmp / "videos" / f"v{i:02d}{args.video.suffix}"
            v.symlink_to(args.video.resolve())
            videos.append(v)
        frames = per_video * len(videos)
        runs = [
            (r, d, g)
            for r in args.readers.split(",")
            for d in args.decoders.split(",")
            for g in counts
        ]
        for reader, decoders, g in runs:
            set_decoders(model, decoders)
            key = f"{reader}/{decoders}"
            t0 = time.perf_counter()
            started = time.time()
            done: list = []
            target = tmp / f"out_{reader}_{decoders}_{g}"
            lines: list[str] = []  # the batch's log, with when each line came
            run = threading.Thread(
                target=_batch,
                args=(done, model, videos, target, g, args.jobs, reader, args.engine, lines, t0),
                daemon=True,
            )
            run.start()
            run.join(args.timeout)
            wall = time.perf_counter() - t0
            if not done:
                row = {"gpus": g, "reader": reader, "decoders": decoders, "timed_out_after_s": wall}
                out["runs"][f"{key}/{g}"] = row
                print(json.dumps(row), flush=True)
                _write(args.out, out)
                os._exit(3)  # workers may hang on: leave without waiting for them
            if isinstance(done[0], BaseException):
                raise done[0]
            report = done[0]
            ok = [r for r in report.videos if r.status == "ok"]
            row = {
                "gpus": g,
                "reader": reader,
                "decoders": decoders,
                "workers": report.workers,
                "videos_ok": len(ok),
                "videos_failed": len(report.videos) - len(ok),
                "predict_seconds": report.seconds,
                "frames": frames,
                "seconds": wall,
                "fps": frames / wall,
                # G > 1: each worker's seconds to ready (GPU start-up, models); per worker its
                # videos' seconds in the order handed out (the first ones pay the graph
                # captures and cuDNN's choices)
                "worker_starts": report.worker_starts,
                "video_seconds": {
                    w: [round(r.seconds, 2) for r in ok if r.worker == w]
                    for w in sorted({r.worker for r in ok})
                },
                "timeline": _timeline(target, started),
                "log": lines,
            }
            out["runs"][f"{key}/{g}"] = row
            print(json.dumps(row), flush=True)
            _write(args.out, out)
        out["speedup_vs_1"] = {
            k: r["fps"] / out["runs"][f"{r['reader']}/{r['decoders']}/1"]["fps"]
            for k, r in out["runs"].items()
            if "fps" in r and "fps" in out["runs"].get(f"{r['reader']}/{r['decoders']}/1", {})
        }
    print(json.dumps(out, indent=2))
    _write(args.out, out)
    return 0


def _warm_fork_server() -> None:
    """Start vidpose's fork server and wait until it forks (its imports done)."""
    from vidpose.predict.processes import main_hidden, start_server, worker_context

    if start_server():
        with main_hidden():
            proc = worker_context().Process(target=os.getpid)  # a no-op
            proc.start()
        proc.join()


def _batch(
    done: list,
    model: Path,
    videos: list,
    out: Path,
    workers: int,
    jobs,
    reader,
    engine,
    lines: list,
    t0: float,
) -> None:
    def log(msg: str) -> None:  # "[seconds since the call] message"
        lines.append(f"[{time.perf_counter() - t0:.2f} s] {msg}")

    try:
        done.append(
            vidpose.predict_batch(
                model,
                videos,
                out,
                workers=workers,
                jobs=jobs,
                reader=None if reader == "auto" else reader,
                engine=engine,
                log=log,
            )
        )
    except BaseException as exc:  # raised in the main thread
        done.append(exc)


def _timeline(out: Path, started: float) -> dict:
    """Per worker, from the run's ledger (1 s resolution): seconds from the call to its first
    and last video finished, and how many it finished."""
    rows: dict = {}
    for line in (out / ".vidpose-ledger.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") != "finished":
            continue
        at = datetime.fromisoformat(event["time"]).timestamp() - started
        row = rows.setdefault(event.get("worker") or "main", {"videos": 0})
        row["videos"] += 1
        row.setdefault("first_finished_s", round(at, 1))
        row["last_finished_s"] = round(at, 1)
    return rows


def _write(path: Path | None, out: dict) -> None:
    """The results so far (after every run: a later run that hangs loses nothing)."""
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
