"""How fast one video decodes when split into parts decoded at once.

    python bench/decode_parts.py VIDEO [--readers pyav,nvdec] [--parts 1,2,4,8] [--planar]
        [--batch-size 256] [--out bench/results/decode_parts.json]

Each part is the frame range ``[i * n / P, (i + 1) * n / P)`` read with
``open_video(...).iter_batches(batch_size, start, stop)`` in its own thread (the reader seeks to
the keyframe before ``start``), so the figure is what a one-video prediction could get from P
decoders. Frames are checked: every index once, the same count as sequential decoding.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import torch

from vidpose.video import open_video, probe_video


def decode(
    video: Path, reader: str, parts: int, batch_size: int, planar: bool = False, threads: int = 0
) -> dict:
    n = probe_video(video).n_frames
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    seen = [0] * parts
    errors: list[BaseException] = []
    device = "cuda" if reader in ("nvdec", "dali") else None

    def one(i: int) -> None:
        try:
            with open_video(
                video, reader=reader, device=device, planar=planar, threads=threads
            ) as vr:
                for b in vr.iter_batches(batch_size, bounds[i], bounds[i + 1]):
                    seen[i] += len(b.indices)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=one, args=(i,)) for i in range(parts)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if device:
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    if errors:
        return {"error": f"{type(errors[0]).__name__}: {errors[0]}"}
    return {"parts": parts, "frames": sum(seen), "seconds": wall, "fps": sum(seen) / wall}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--readers", default="pyav")
    ap.add_argument("--parts", default="1,2,4,8")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--planar", action="store_true", help="PyAV also as I420 planes (pyav-planar rows)"
    )
    ap.add_argument(
        "--threads", default="0", help="PyAV decoding threads per part, e.g. 0,2 (0: FFmpeg's)"
    )
    args = ap.parse_args(argv)
    out = {
        "benchmark": "decode_parts",
        "video": args.video.name,
        "frames": probe_video(args.video).n_frames,
        "cpus": os.cpu_count(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "runs": {},
    }
    readers = [(r, False) for r in args.readers.split(",")]
    if args.planar:
        readers.append(("pyav", True))
    combos = [
        (reader, planar, parts, threads)
        for reader, planar in readers
        for threads in (int(t) for t in args.threads.split(","))
        for parts in (int(p) for p in args.parts.split(","))
    ]
    for reader, planar, parts, threads in combos:
        if threads and reader != "pyav":
            continue
        row = decode(args.video, reader, parts, args.batch_size, planar, threads)
        name = f"{reader}{'-planar' if planar else ''}/{parts}" + (
            f"/t{threads}" if threads else ""
        )
        out["runs"][name] = row
        print(name, json.dumps(row), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
