"""GPU time per stage of one prediction step, to see where the network's time goes.

    python bench/predict_stages.py OUT.json [--batch 256]

Random weights (timing only): ResNet-50 + heatmap_fpn at 256 x 256, 17 keypoints, bf16 autocast,
channels_last (vidpose's defaults), on packed I420 frames of the mirror-mouse video's size
(406 x 396). Each stage is run eagerly 20 times between CUDA events (after 5 warm-up runs):
the I420 -> RGB conversion, the float conversion, the antialiased resize (and without
antialiasing), ``PoseModel._prepare`` as a whole, the backbone, the head (its convolutions,
its heatmap decoding), and the whole step as ``vidpose predict`` runs it (``_Members.infer``:
one captured CUDA graph).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ensemble_ceiling import timed as ceiling_timed
from vidpose.build import build_network_from_config
from vidpose.config.compose import default_config
from vidpose.models.heatmaps import decode_heatmaps
from vidpose.predict.predictor import PoseModel, _Members
from vidpose.video.color import i420_to_rgb

FRAME_HW = (406, 396)


def timed(f) -> float:
    """Milliseconds per call of ``f`` on the GPU, over 20 calls."""
    return ceiling_timed(f, 20)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args(argv)
    cfg = default_config()
    cfg.data.image_height = cfg.data.image_width = 256
    torch.manual_seed(0)
    net = build_network_from_config(cfg, 17, pretrained=False)
    model = PoseModel(net, cfg, [f"k{i}" for i in range(17)], torch.device("cuda"))
    net, head, bs = model.network, model.network.head, args.batch
    h, w = FRAME_HW
    i420 = torch.randint(0, 255, (bs, h * 3 // 2, w), dtype=torch.uint8, device="cuda")
    res: dict = {"device": torch.cuda.get_device_name(), "batch": bs, "frame_hw": FRAME_HW}
    with torch.inference_mode():
        res["i420_to_rgb_ms"] = timed(lambda: i420_to_rgb(i420))
        rgb = i420_to_rgb(i420)
        res["to_float_ms"] = timed(lambda: rgb.permute(0, 3, 1, 2).float().div_(255.0))
        xf = rgb.permute(0, 3, 1, 2).float().div_(255.0)
        size = model.input_hw
        res["resize_aa_ms"] = timed(
            lambda: F.interpolate(xf, size=size, mode="bilinear", antialias=True)
        )
        res["resize_noaa_ms"] = timed(lambda: F.interpolate(xf, size=size, mode="bilinear"))
        res["prepare_ms"] = timed(lambda: model._prepare(i420))
        x, _ = model._prepare(i420)
        with model._autocast:
            res["backbone_ms"] = timed(lambda: net.forward_features(x))
            feats = net.forward_features(x)
            res["head_ms"] = timed(lambda: net.forward_head(feats))

            def logits() -> torch.Tensor:
                y = head.reduce(feats[head.stride])
                for s in head.levels:
                    y = F.interpolate(y, scale_factor=2.0, mode="nearest")
                    if str(s) in head.lateral and s in feats:
                        y = y + head.lateral[str(s)](feats[s])
                    y = head.refine[str(s)](y)
                return head.final(y) * head.logit_scale

            res["head_convs_ms"] = timed(logits)
            lg = logits()
            res["decode_ms"] = timed(
                lambda: decode_heatmaps(
                    lg, head.heatmap_stride, beta=head.beta, radius=head.decode_radius
                )
            )
        members = _Members([model])
        res["graph_step_ms"] = timed(lambda: members.infer(i420, bs))
        res["graph_fps"] = bs / res["graph_step_ms"] * 1000
    print(json.dumps(res, indent=1))
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
