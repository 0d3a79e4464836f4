"""``data.split_file`` pins the train/val/test split of the labeled frames."""

from __future__ import annotations

import json

import pytest

from vidpose.data.labeled import read_split_file
from vidpose.errors import ProjectError
from vidpose.project import load_project
from vidpose.training import train

FRAMES = ["labeled-data/a/img01.png", "labeled-data/a/img02.png", "labeled-data/b/img07.png"]


def _write(path, rows):
    path.write_text("\n".join(rows) + "\n")
    return path


def test_split_file_assigns_each_image(tmp_path):
    f = _write(
        tmp_path / "split.csv",
        [
            "image,split",
            "labeled-data/b/img07.png,test",
            "labeled-data/a/img01.png,train",
            "labeled-data\\a\\img02.png,VAL",
        ],
    )
    assert read_split_file(f, FRAMES).tolist() == ["train", "val", "test"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["img,set"], "row 1 must be the header 'image,split'"),
        (["image,split", *[f"{x},train" for x in FRAMES], FRAMES[0] + ",val"], "row 5"),
        (["image,split", f"{FRAMES[0]},train", f"{FRAMES[1]},dev", f"{FRAMES[2]},test"],
         "row 3 (labeled-data/a/img02.png): split 'dev' is not one of train, val, test"),
        (["image,split", *[f"{x},train" for x in FRAMES], "labeled-data/c/x.png,test"],
         "row 5: 'labeled-data/c/x.png' is not a labeled image"),
        (["image,split", f"{FRAMES[0]},train"], "2 labeled image(s) are not listed"),
        (["image,split", *[f"{x},val" for x in FRAMES]], "no image is in the train split"),
    ],
)  # fmt: skip
def test_split_file_problems_name_the_row(tmp_path, rows, message):
    with pytest.raises(ProjectError) as err:
        read_split_file(_write(tmp_path / "split.csv", rows), FRAMES)
    assert "data.split_file" in str(err.value) and message in str(err.value)


def test_training_uses_the_split_file_and_records_it(tiny_project, tmp_path):
    frames = [str(f) for f in load_project(tiny_project).labels.frames]
    splits = ["test"] * 3 + ["val"] * 2 + ["train"] * (len(frames) - 5)
    _write(tiny_project / "split.csv", ["image,split", *map(",".join, zip(frames, splits))])
    res = train(
        tiny_project,
        [
            "model.backbone=resnet18",
            "model.pretrained=false",
            "data.image_height=64",
            "data.image_width=64",
            "training.max_steps=1",
            "training.batch_size=4",
            "data.split_file=split.csv",
        ],
        model_dir=tmp_path / "m",
        progress=False,
    )
    record = json.loads((res.model_dir / "model.json").read_text())
    assert record["split"]["test"] == frames[:3] and record["split"]["val"] == frames[3:5]
    assert res.metrics["test"]["frames"] == 3
