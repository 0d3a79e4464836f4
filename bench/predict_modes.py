"""Reader x decoder set-ups end to end: ``vidpose.predict_videos`` on N links to one video.

    python bench/predict_modes.py MODEL_DIR long.mp4 OUT.json \
        pyav:-:4:64:threads,nvdec:threaded:4:64:threads,nvdec:stream:4:64:threads,\
nvdec:threaded:8:128:processes [COPIES=20]

A config is ``READER:STREAMING:JOBS:BATCH:DECODERS[:c]``: the reader (``pyav``, ``nvdec``);
for NVDEC how it streams (``threaded``: PyNvVideoCodec's ThreadedDecoder, ``stream``: its
SimpleDecoder, ``index``; ``-`` for others: it sets ``nvdec_reader.AUTO_STREAMING``, which
applies only to videos whose timestamps the reader could check, so the mirror-mouse runs read
by index whatever it said); decoders at once; batch size; ``predict.decoders``
(``threads`` or ``processes``, written into the model's config.yaml); ``c`` to compile.
Each row: aggregate frames/s from the call to the last CSV written, seconds, failed videos,
and the mean ``nvidia-smi`` utilization.gpu over the run (200 ms samples). With
``MODEL_ONLY=1`` in the environment, also the captured graph alone at batch 64/128/256
(``predict_many.model_only``). The model's config is left at ``predict.decoders: auto``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import vidpose
from gpu_busy import Sampler
from predict_many import model_only, set_decoders
from vidpose.video import nvdec_reader, probe_video


def main() -> int:
    model, video, out_path = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    configs = [c.split(":") for c in sys.argv[4].split(",")]
    copies = int(sys.argv[5]) if len(sys.argv) > 5 else 20
    res: dict = {"benchmark": "predict_modes", "device": torch.cuda.get_device_name()}
    res.update(cpus=os.cpu_count(), video=video.name, copies=copies)
    info = probe_video(video)
    n = info.n_frames
    sampler = Sampler(200)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "v").mkdir()
        videos = []
        for i in range(copies):
            v = tmp / "v" / f"v{i:02d}{video.suffix}"
            v.symlink_to(video.resolve())
            videos.append(v)
        for k, cfg in enumerate(configs):
            reader, streaming, jobs, bs, decoders = cfg[:5]
            compiled = len(cfg) > 5 and cfg[5] == "c"
            if streaming != "-":
                nvdec_reader.AUTO_STREAMING = streaming
            set_decoders(model, decoders)
            started = time.time()
            t0 = time.perf_counter()
            try:
                r = vidpose.predict_videos(
                    model,
                    videos,
                    tmp / f"o{k}",
                    batch_size=int(bs),
                    reader=reader,
                    jobs=int(jobs),
                    compile=True if compiled else None,
                )
                wall = time.perf_counter() - t0
                row = {"fps": round(n * copies / wall), "seconds": round(wall, 2)}
                row["failed"] = len(r.failed)
                if r.failed:
                    row["first_failure"] = str(next(iter(r.failed.values())))[:300]
            except Exception as e:  # recorded; the next config still runs
                row = {"error": repr(e)[:500]}
            row["busy"] = round(sampler.busy(started, time.time())[0], 1)
            res[":".join(cfg)] = row
            print(":".join(cfg), row, flush=True)
            out_path.write_text(json.dumps(res, indent=1))
    sampler.stop()
    set_decoders(model, "auto")
    if "MODEL_ONLY" in os.environ:
        for bs in (64, 128, 256):
            res[f"model_only_{bs}"] = model_only(model, bs, (info.height, info.width), 4.0)
            print(res[f"model_only_{bs}"], flush=True)
        out_path.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":  # decoder processes re-import this module: keep it guarded
    sys.exit(main())
