"""Decoding alone, as prediction's decoders do it: how many frames/s can they hand over?

    python bench/decode_ceilings.py long.mp4 OUT.json proc:12:64,procgpu:12:256,thr:4:64 --copies 10

A config is ``KIND:JOBS:BATCH``. ``proc``: :class:`vidpose.predict.decoders.ProcessDecoders`
(PyAV, I420 planes, as ``predict.decoders=processes`` on a GPU), the parent handing each batch
back at once; ``procgpu``: the same, the parent copying each batch to the GPU from the
page-locked shared buffer first (as prediction does), at most 4 copies in flight; ``thr``: JOBS
PyAV threads in this process (``predict.decoders=threads``). Each decoder decodes with
``16 // JOBS`` FFmpeg threads (the 16-core GPU host; ``--ffmpeg-threads`` sets it). The video
is decoded ``--copies`` times.
Each row: frames/s over the whole run, seconds, and for processes the time to the first video
opened.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import torch

from vidpose.predict.decoders import END, ProcessDecoders
from vidpose.video import open_video
from vidpose.video.base import FrameBatch


def processes(video: str, copies: int, jobs: int, batch: int, to_gpu: bool, threads: int) -> dict:
    frames = 0
    stream = torch.cuda.Stream() if to_gpu else None
    registered: set[int] = set()
    pending: list = []  # (copy done, ticket)
    with ProcessDecoders(jobs, batch, "pyav", planar=True) as dec:
        t0 = time.perf_counter()
        for i in range(copies):
            dec.submit(i, video, 0, None, threads)
        ended, first = 0, None
        while ended < copies:
            _, kind, payload = dec.get()
            if kind == "open":
                first = first or time.perf_counter()
            elif isinstance(kind, FrameBatch):
                frames += kind.frames.shape[0]
                if not to_gpu:
                    dec.release(payload)
                    continue
                storage = kind.frames.untyped_storage()
                if storage.data_ptr() not in registered:
                    torch.cuda.cudart().cudaHostRegister(storage.data_ptr(), storage.nbytes(), 0)
                    registered.add(storage.data_ptr())
                with torch.cuda.stream(stream):
                    kind.frames.to("cuda", non_blocking=True)
                    done = torch.cuda.Event()
                    done.record(stream)
                pending.append((done, payload))
                while pending and (pending[0][0].query() or len(pending) > 4):
                    pending[0][0].synchronize()
                    dec.release(pending.pop(0)[1])
            else:
                ended += 1
                if kind != END:
                    raise RuntimeError(f"decoding failed: {kind}")
        for done, payload in pending:
            done.synchronize()
            dec.release(payload)
        wall = time.perf_counter() - t0
    return {
        "fps": round(frames / wall),
        "frames": frames,
        "seconds": round(wall, 2),
        "first_open_s": round(first - t0, 2),
    }


def in_threads(video: str, copies: int, jobs: int, batch: int, threads: int) -> dict:
    todo = list(range(copies))
    lock = threading.Lock()
    count = [0]

    def work() -> None:
        while True:
            with lock:
                if not todo:
                    return
                todo.pop()
            with open_video(video, reader="pyav", planar=True, threads=threads) as vr:
                for b in vr.iter_batches(batch):
                    frames = torch.from_numpy(b.frames)
                    with lock:
                        count[0] += frames.shape[0]

    t0 = time.perf_counter()
    workers = [threading.Thread(target=work) for _ in range(jobs)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    return {"fps": round(count[0] / wall), "frames": count[0], "seconds": round(wall, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video")
    ap.add_argument("out", type=Path)
    ap.add_argument("configs", help="KIND:JOBS:BATCH,... (KIND: proc, procgpu, thr)")
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--ffmpeg-threads", type=int, default=None, help="per decoder (16 // JOBS)")
    args = ap.parse_args()
    res: dict = {"benchmark": "decode_ceilings", "video": str(args.video), "copies": args.copies}
    if torch.cuda.is_available():
        res["device"] = torch.cuda.get_device_name()
    for cfg in args.configs.split(","):
        kind, jobs, batch = cfg.split(":")
        threads = args.ffmpeg_threads or max(1, 16 // int(jobs))
        if kind == "thr":
            row = in_threads(args.video, args.copies, int(jobs), int(batch), threads)
        else:
            gpu = kind == "procgpu"
            row = processes(args.video, args.copies, int(jobs), int(batch), gpu, threads)
        res[cfg] = row
        print(cfg, row, flush=True)
        args.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
