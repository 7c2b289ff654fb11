"""featurestore.submission.check_submission: the four submission files checked against their
template (header, every template frame once and in order, values in their domains)."""

import pytest

from featurestore.abaw import MTL, read_template_rows, submission_header
from featurestore.errors import DataFormatError
from featurestore.submission import FIELDS, check_submission

FRAMES = ["a/00001.jpg", "a/00002.jpg", "b_left/00007.jpg"]
GOOD = {"va": "0.5,-1.0", "expr": "7", "au": ",".join("010011000001"),
        MTL: "1.0,-0.25,3," + ",".join("100000000010")}


def write(path, header, tails):
    path.write_text("\n".join([header, *(f"{f},{t}" for f, t in zip(FRAMES, tails, strict=False))]) + "\n")
    return path


@pytest.fixture
def template(tmp_path):
    return write(tmp_path / "template.txt", "image,valence,arousal,expression,aus", [GOOD[MTL]] * 3)


@pytest.mark.parametrize("task", [*FIELDS])
def test_a_good_file_passes(tmp_path, template, task):
    sub = write(tmp_path / "s.csv", submission_header(task), [GOOD[task]] * 3)
    assert check_submission(sub, task, template) == 3
    assert check_submission(sub, task, read_template_rows(template)) == 3


def test_headers():
    assert submission_header("va") == "image_location,valence,arousal"
    assert submission_header(MTL) == "image,valence,arousal,expression,aus"
    with pytest.raises(ValueError, match="'x'"):
        submission_header("x")


@pytest.mark.parametrize("task,header,tails,where,what", [
    ("va", "image_location,valence", [GOOD["va"]] * 3, 1, "header must be"),
    (MTL, "image_location,valence,arousal", [GOOD[MTL]] * 3, 1, "header must be"),
    ("va", None, [GOOD["va"]] * 2, None, "1 template frame.s. have no row, from 'b_left/00007.jpg'"),
    ("va", None, ["1.5,0"] + [GOOD["va"]] * 2, 2, "value 1 '1.5': outside"),
    ("va", None, ["nan,0"] + [GOOD["va"]] * 2, 2, "outside"),
    ("va", None, ["x,0"] + [GOOD["va"]] * 2, 2, "not a number"),
    ("expr", None, [GOOD["expr"], "8", GOOD["expr"]], 3, "value 1 '8': not one of"),
    ("expr", None, [GOOD["expr"], "1,2", GOOD["expr"]], 3, "1 values expected after the frame, got 2"),
    ("au", None, [GOOD["au"]] * 2 + [",".join("0120" * 3)], 4, "value 3 '2'"),
    (MTL, None, [GOOD[MTL]] * 2 + [GOOD["va"] + ",1," + GOOD["au"][:-2]], 4, "15 values expected"),
    (MTL, None, [GOOD[MTL]] * 2 + ["0,0,-1," + GOOD["au"]], 4, "value 3 '-1'"),
])
def test_problems_are_named(tmp_path, template, task, header, tails, where, what):
    sub = write(tmp_path / "s.csv", header or submission_header(task), tails)
    with pytest.raises(DataFormatError, match=what) as err:
        check_submission(sub, task, template)
    assert str(err.value).startswith(f"{sub}:{where}:" if where else f"{sub}:")


def test_frames_must_follow_the_template(tmp_path, template):
    rows = [f"{f},{GOOD['expr']}" for f in FRAMES]
    head = submission_header("expr")
    sub = tmp_path / "s.csv"
    sub.write_text("\n".join([head, rows[1], rows[0], rows[2]]) + "\n")
    with pytest.raises(DataFormatError, match=r"s.csv:2: expected the template's frame 'a/00001.jpg'"):
        check_submission(sub, "expr", template)
    sub.write_text("\n".join([head, *rows, "b_left/00008.jpg,1"]) + "\n")
    with pytest.raises(DataFormatError, match="s.csv:5: more rows than the 3 template frames"):
        check_submission(sub, "expr", template)
