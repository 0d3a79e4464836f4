"""Video readers on one video: agreement with PyAV, unlabeled-clip throughput, sequential decode.

    python bench/reader_check.py VIDEO [--clip-length 16] [--clips 200] [--out JSON]

For each reader variant that can run here (pyav; nvdec with the decoder's RGB and with
``rgb="torch"``; dali):

(a) agreement: the same 50 random frame indices, each read as a clip of one frame, compared with
    PyAV's frame: max / mean absolute pixel difference, and identity errors (a frame closer to
    PyAV's previous or next frame than to the one asked for); the first 64 frames read
    sequentially are compared too.
(b) unlabeled clips: frames/s of :class:`vidpose.data.unlabeled.ClipLoader` clips of T frames
    resized to 256x256 on the device, including augmentation (``augment_clip`` on the device for
    pyav / nvdec; inside the pipeline for dali, both of its samplings).
(c) sequential decode: frames/s of ``iter_batches(64)`` over the video (nvdec in both of its
    sequential modes).

A reader that fails is reported with its error, never fatal. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidpose.config import AugmentConfig
from vidpose.data.augment import augment_clip
from vidpose.data.unlabeled import ClipLoader
from vidpose.video import VideoInfo, probe_video
from vidpose.video.pyav_reader import PyAVReader

N_INDICES = 50
SEQ_BATCH = 64
INPUT_HW = (256, 256)
WARMUP_CLIPS = 5


def error_text(e: BaseException) -> str:
    tail = traceback.format_exception(type(e), e, e.__traceback__)[-3:]
    return f"{type(e).__name__}: {e}".strip()[:2000] + "\n" + "".join(tail)[-1500:]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def as_numpy(frames: Any) -> np.ndarray:
    if isinstance(frames, torch.Tensor):
        return frames.cpu().numpy()
    return np.asarray(frames)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "torch": torch.__version__}
    for name, module in (
        ("av", "av"),
        ("pynvvideocodec", "PyNvVideoCodec"),
        ("dali", "nvidia.dali"),
        ("kornia", "kornia"),
    ):
        try:
            out[name] = getattr(__import__(module, fromlist=["_"]), "__version__", "?")
        except Exception as e:
            out[name] = f"unavailable ({type(e).__name__})"
    return out


# ---------------------------------------------------------------------------------------------
# (a) agreement with PyAV


def reference_frames(video: Path, indices: list[int], n: int) -> dict[int, np.ndarray]:
    """PyAV frames at the indices and their neighbours."""
    wanted = sorted({j for i in indices for j in (i - 1, i, i + 1) if 0 <= j < n})
    frames = {}
    with PyAVReader(video) as r:
        for i in wanted:
            frames[i] = r.read_clip(i, 1).frames[0]
    return frames


def agreement(reader, indices: list[int], ref: dict[int, np.ndarray], video: Path) -> dict:
    diffs_max, diffs_mean, identity_errors, invalid = [], [], [], 0
    t0 = time.perf_counter()
    for i in indices:
        b = reader.read_clip(i, 1)
        got = as_numpy(b.frames)[0].astype(np.int16)
        invalid += int((~b.valid).sum())
        d = np.abs(got - ref[i].astype(np.int16))
        diffs_max.append(int(d.max()))
        diffs_mean.append(float(d.mean()))
        for j in (i - 1, i + 1):
            if j in ref:
                dj = float(np.abs(got - ref[j].astype(np.int16)).mean())
                if dj < float(d.mean()):
                    identity_errors.append(i)
                    break
    per_clip_ms = (time.perf_counter() - t0) / len(indices) * 1000
    # first frames read sequentially
    seq = []
    for b in reader.iter_batches(SEQ_BATCH, 0, SEQ_BATCH):
        seq.append(as_numpy(b.frames))
    seq = np.concatenate(seq).astype(np.int16)
    with PyAVReader(video) as r:
        seq_ref = r.read_clip(0, len(seq)).frames.astype(np.int16)
    seq_d = np.abs(seq - seq_ref)
    per_frame = seq_d.reshape(len(seq), -1).mean(axis=1)
    return {
        "max_abs_diff": int(max(diffs_max)),
        "mean_abs_diff": float(np.mean(diffs_mean)),
        "frames_mean_diff_over_5": int(sum(m > 5 for m in diffs_mean)),
        "identity_errors": identity_errors,
        "invalid_frames": invalid,
        "random_clip_ms": per_clip_ms,
        "sequential_first_frames": len(seq),
        "sequential_max_abs_diff": int(seq_d.max()),
        "sequential_mean_abs_diff": float(seq_d.mean()),
        "sequential_frames_mean_diff_over_5": int((per_frame > 5).sum()),
    }


# ---------------------------------------------------------------------------------------------
# (b) unlabeled clip throughput, (c) sequential decode


def clip_throughput(
    info: VideoInfo, reader: str, device: torch.device, clip_length: int, clips: int, **kw
) -> dict:
    settings = AugmentConfig()
    generator = torch.Generator(device=device) if device.type == "cuda" else torch.Generator()
    generator.manual_seed(0)
    loader = ClipLoader(
        [info],
        clip_length,
        INPUT_HW,
        reader=reader,
        device=device,
        seed=0,
        steps_per_epoch=clips + WARMUP_CLIPS,
        **kw,
    )
    checksum = torch.zeros((), device=device)
    try:
        t0 = None
        for k, clip in enumerate(loader):
            if k == WARMUP_CLIPS:
                sync(device)
                t0 = time.perf_counter()
            frames = clip.frames
            if clip.matrix is None:
                frames, _ = augment_clip(frames, settings, generator=generator)
            checksum += frames[:, :, ::64, ::64].sum()  # consume, without a host sync
        sync(device)
        seconds = time.perf_counter() - t0
    finally:
        loader.close()
    return {
        "reader": loader.reader,
        "clips": clips,
        "seconds": seconds,
        "frames_per_s": clips * clip_length / seconds,
        "clips_per_s": clips / seconds,
        "checksum": float(checksum),
    }


def sequential_fps(make: Callable[[], Any], device: torch.device, max_frames: int) -> dict:
    with make() as reader:
        stop = min(reader.info.n_frames, max_frames)
        it = reader.iter_batches(SEQ_BATCH, 0, stop)
        first = next(it)  # opening costs (pipeline build, first seek) are not decode speed
        n = len(first.valid)
        sync(device)
        t0 = time.perf_counter()
        valid = 0
        for b in it:
            n += len(b.valid)
            valid += int(b.valid.sum())
        sync(device)
        seconds = time.perf_counter() - t0
        timed = n - len(first.valid)
        return {
            "frames": n,
            "frames_per_s": timed / seconds if seconds > 0 else float("nan"),
            "invalid_frames": timed - valid,
            "decode_errors": len(getattr(reader, "decode_errors", [])),
        }


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("video", type=Path)
    p.add_argument("--clip-length", type=int, default=16)
    p.add_argument("--clips", type=int, default=200)
    p.add_argument("--max-seq-frames", type=int, default=100_000)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    info = probe_video(args.video)
    rng = np.random.default_rng(0)
    indices = [int(i) for i in rng.choice(info.n_frames, min(N_INDICES, info.n_frames), False)]
    ref = reference_frames(args.video, indices, info.n_frames)

    from vidpose.video import dali_reader, nvdec_reader

    video = args.video
    variants: dict[str, dict[str, Any]] = {
        "pyav": {"make": lambda: PyAVReader(video), "loader": "pyav"},
        "nvdec": {"make": lambda: nvdec_reader.NvdecReader(video, device), "loader": "nvdec"},
        "nvdec_torch_rgb": {
            "make": lambda: nvdec_reader.NvdecReader(video, device, rgb="torch"),
        },
        "nvdec_seq_index": {
            "make": lambda: nvdec_reader.NvdecReader(video, device, sequential="index"),
            "only_sequential": True,
        },
        "nvdec_seq_stream": {
            "make": lambda: nvdec_reader.NvdecReader(video, device, sequential="stream"),
            "only_sequential": True,
        },
        "dali": {"make": lambda: dali_reader.DaliReader(video, device)},
    }
    results: dict[str, Any] = {
        "video": str(args.video),
        "info": {k: str(v) if isinstance(v, Path) else v for k, v in vars(info).items()},
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "versions": versions(),
        "clip_length": args.clip_length,
        "clips": args.clips,
        "input_hw": list(INPUT_HW),
        "indices": indices,
        "readers": {},
        "clip_throughput": {},
    }

    for name, spec in variants.items():
        entry: dict[str, Any] = {}
        results["readers"][name] = entry
        if not spec.get("only_sequential"):
            try:
                with spec["make"]() as reader:
                    entry["agreement"] = agreement(reader, indices, ref, args.video)
                    for attr in ("timestamp_checked", "misplaced_frames"):
                        if hasattr(reader, attr):
                            entry[attr] = getattr(reader, attr)
            except Exception as e:
                entry["agreement_error"] = error_text(e)
        try:
            entry["sequential"] = sequential_fps(spec["make"], device, args.max_seq_frames)
        except Exception as e:
            entry["sequential_error"] = error_text(e)
        print(f"[{name}] {json.dumps(entry, default=str)[:600]}", flush=True)

    loaders = [
        ("pyav", "pyav", {}),
        ("pyav_1_thread", "pyav", {"workers": 1}),
        ("nvdec", "nvdec", {}),
        ("dali_uniform", "dali", {"pipeline_options": {"sampling": "uniform"}}),
        ("dali_shuffle", "dali", {"pipeline_options": {"sampling": "shuffle"}}),
    ]
    for label, reader, kw in loaders:
        if reader != "pyav" and device.type != "cuda":
            results["clip_throughput"][label] = {"error": "needs a CUDA device"}
            continue
        try:
            results["clip_throughput"][label] = clip_throughput(
                info, reader, device, args.clip_length, args.clips, **kw
            )
        except Exception as e:
            results["clip_throughput"][label] = {"error": error_text(e)}
        print(f"[clips {label}] {json.dumps(results['clip_throughput'][label])[:400]}", flush=True)

    print_table(results)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str))
        print(f"wrote {args.out}")
    return 0


def print_table(results: dict) -> None:
    print(f"\n{results['video']} on {results['device']}; versions {results['versions']}")
    head = f"{'reader':<18}{'max|d|':>8}{'mean|d|':>9}{'id err':>8}{'clip ms':>9}{'seq fps':>10}"
    print(head)
    for name, e in results["readers"].items():
        a = e.get("agreement", {})
        s = e.get("sequential", {})
        row = (
            f"{name:<18}{a.get('max_abs_diff', '-')!s:>8}"
            f"{a.get('mean_abs_diff', float('nan')):>9.3f}"
            f"{len(a.get('identity_errors', [])) if a else '-'!s:>8}"
            f"{a.get('random_clip_ms', float('nan')):>9.1f}"
            f"{s.get('frames_per_s', float('nan')):>10.0f}"
        )
        print(row)
        for key in ("agreement_error", "sequential_error"):
            if key in e:
                print(f"    {key}: {e[key].splitlines()[0][:160]}")
    print(f"\nunlabeled clips, T={results['clip_length']}, {INPUT_HW[0]}x{INPUT_HW[1]}, augmented:")
    for label, c in results["clip_throughput"].items():
        if "error" in c:
            print(f"  {label:<14} error: {c['error'].splitlines()[0][:160]}")
        else:
            fps, cps = c["frames_per_s"], c["clips_per_s"]
            print(f"  {label:<14} {fps:>8.0f} frames/s  ({cps:.1f} clips/s)")


if __name__ == "__main__":
    sys.exit(main())
