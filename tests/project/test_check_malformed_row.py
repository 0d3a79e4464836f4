"""A malformed label row does not hide the project's other problems."""

from __future__ import annotations

from vidpose.project import check_project


def test_malformed_row_and_other_problems_are_all_reported(tiny_project):
    csv = tiny_project / "CollectedData.csv"
    lines = csv.read_text().splitlines()
    short = lines[4].split(",")
    lines[4] = ",".join(short[:-2])  # row 5: one coordinate pair short
    outside = lines[5].split(",")
    outside[1] = "999.5"  # row 6: x outside the 64 px image
    lines[5] = ",".join(outside)
    csv.write_text("\n".join(lines) + "\n")
    first_image = tiny_project / lines[6].split(",")[0]
    first_image.unlink()  # row 7: missing image

    report = check_project(tiny_project)
    found = {(p.where, p.code) for p in report.problems if p.severity == "error"}
    wheres = {w for w, _ in found}
    assert {"row 5", "row 6", "row 7"} <= wheres, report.problems
    messages = " | ".join(str(p) for p in report.problems)
    assert "coordinate pairs" in messages and "999.5" in messages and "does not exist" in messages
    assert not report.usable
