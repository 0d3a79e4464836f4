"""vidpose evaluate: a report with every figure embedded, outliers and figures beside the model."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from vidpose.cli import main
from vidpose.errors import VidposeError
from vidpose.training import train
from vidpose.viz.evaluate import evaluate

VOID = {"meta", "img", "br", "hr", "link", "input"}


class _Checker(HTMLParser):
    """Strict nesting check: every non-void element closed, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


@pytest.fixture(scope="module")
def trained(tiny_project_src, tmp_path_factory):
    import shutil

    root = tmp_path_factory.mktemp("eval")
    project = root / "project"
    shutil.copytree(tiny_project_src, project)
    res = train(
        project,
        [
            "model.backbone=resnet18",
            "model.pretrained=false",
            "model.heatmap_stride=2",
            "data.image_height=64",
            "data.image_width=64",
            "data.val_fraction=0.125",
            "data.test_fraction=0.125",
            "training.batch_size=4",
            "training.max_steps=2",
            "model.losses=[pca_singleview]",
            "unlabeled.reader=pyav",
        ],
        model_dir=root / "model",
        progress=False,
    )
    return project, res.model_dir


def test_report_is_valid_html_with_every_figure_embedded(trained):
    project, model_dir = trained
    video = project / "videos" / "session00.mp4"
    res = evaluate(model_dir, [video], device="cpu")
    assert (model_dir / "videos" / "session00.csv").exists()  # predicted on the way
    text = res.report.read_text()
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert text.startswith("<!DOCTYPE html>")
    assert not checker.errors and not checker.stack
    # labeled: errors, error vs confidence, worst frames; video: traces, confidence; model: the
    # unsupervised loss's activity
    assert len(res.figures) == 6 and all(p.exists() for p in res.figures)
    assert any(p.name == "unsupervised_activity.png" for p in res.figures)
    assert len(checker.images) == len(res.figures)
    for src in checker.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r"(src|href)=\"(http|//)", text)  # nothing fetched from a network
    for words in (
        "Labeled frames",
        "Video session00",
        "Pixel error by split",
        "pca_singleview",
        "how much they acted",
        "active terms %",
    ):
        assert words in text
    table = pd.read_csv(res.outliers)
    assert list(table.columns) == ["video", "frame", "score", "criteria", "reason"]


def test_cli_evaluate_uses_existing_predictions_and_rejects_a_non_model(trained, tmp_path):
    _, model_dir = trained
    assert main(["evaluate", str(model_dir)]) == 0  # the predictions written above
    assert (model_dir / "report.html").exists()
    with pytest.raises(VidposeError, match="is not a vidpose model directory"):
        evaluate(tmp_path)


def test_cli_evaluate_takes_a_folder_of_videos(trained):
    project, model_dir = trained
    assert main(["evaluate", str(model_dir), "--video", str(project / "videos")]) == 0
    stems = {p.stem for p in (project / "videos").glob("*.mp4")}
    assert stems and all((model_dir / "videos" / f"{s}.csv").exists() for s in stems)
