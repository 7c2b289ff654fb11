"""The Aff-Wild2 reader on small trees with every quirk of the real release, and on malformed input."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_affwild2 import (
    AU_HEADER,
    EXPR_HEADER,
    au_rows,
    build_quirky_tree,
    expr_rows,
    va_rows,
    write_annotation,
    write_frames,
    write_text,
)

from featurestore.affwild2 import (
    parse_annotation,
    read_affwild2,
    read_template,
    source_video,
    summarize,
)
from featurestore.errors import DataFormatError


@pytest.fixture(scope="module")
def quirky(tmp_path_factory):
    return read_affwild2(build_quirky_tree(tmp_path_factory.mktemp("aw2")))


def test_videos_found_in_every_frames_root(quirky):
    assert list(quirky.videos) == sorted(
        ["gappy", "split", "nested", "10-60_left", "10-60_right", "test1", "test2"])


def test_gaps_and_late_start(quirky):
    v = quirky.videos["gappy"]
    assert v.frame_numbers.tolist() == [*range(7, 13), *range(15, 21)]
    assert v.num_frames == 25  # the VA file has more label lines than there are jpgs
    present = v.present()
    assert present.shape == (25,) and present.sum() == 12
    assert not present[:6].any() and present[6] and not present[12] and not present[13]
    assert v.frame_path(7).read_bytes()[:2] == b"\xff\xd8"
    with pytest.raises(KeyError):
        v.frame_path(13)


def test_labels_and_invalid_markers(quirky):
    v = quirky.videos["gappy"]
    va, expr = v.labels["va"], v.labels["expr"]
    assert va.split == "train" and expr.split == "val"  # EXPR_Recognition_Challenge (ABAW6 name)
    assert va.values.shape == (25, 2) and va.values.dtype == np.float32
    assert va.valid.tolist() == [i not in (0, 3) for i in range(25)]
    assert va.values[0].tolist() == [-5.0, -5.0]  # raw markers kept
    assert expr.values.dtype == np.int64 and expr.values[1] == -1 and not expr.valid[1]
    assert "au" not in v.labels
    assert quirky.split_of("gappy", "au") is None


def test_two_frame_roots_merge_first_root_wins(quirky):
    v = quirky.videos["split"]
    assert v.frame_numbers.tolist() == list(range(1, 10))
    assert [d.name for d in v.frame_dirs] == ["cropped_aligned", "cropped_aligned_new_50_vids"]
    assert v.frame_path(5).parent.parent.name == "cropped_aligned"
    assert v.frame_path(6).parent.parent.name == "cropped_aligned_new_50_vids"
    au = v.labels["au"]
    assert au.values.shape == (9, 12) and au.values.dtype == np.int8
    assert au.valid.tolist() == [i != 2 for i in range(9)]


def test_nested_frames_root_and_non_jpg_ignored(quirky):
    v = quirky.videos["nested"]
    assert v.frame_numbers.tolist() == [1, 2, 3, 4] and v.num_frames == 4 and not v.labels
    assert v.frame_path(1).exists()


def test_left_right_share_a_source(quirky):
    left, right = quirky.videos["10-60_left"], quirky.videos["10-60_right"]
    assert left.source == right.source == "10-60"
    assert source_video("abc") == "abc" and source_video("_left") == "_left"
    assert quirky.split_of("10-60_left", "va") == "val"


def test_test_list_and_templates(quirky):
    t1, t2 = quirky.videos["test1"], quirky.videos["test2"]
    assert t1.test_tasks == {"va"} and quirky.split_of("test1", "va") == "test"
    assert quirky.split_of("test1", "expr") is None
    assert t1.num_frames == 6 and t1.present().tolist() == [True] * 3 + [False] * 3
    assert t2.frame_numbers.size == 0 and t2.num_frames == 4 and not t2.present().any()
    assert quirky.templates["va"]["test2"].tolist() == [1, 2, 3, 4]


def test_summary_mentions_the_counts(quirky):
    text = summarize(quirky)
    assert "7 videos" in text and "_left/_right sources: 1" in text
    assert "test videos: 2 (1 without frames)" in text


def test_classification_folder_name_and_crlf(tmp_path):
    write_frames(tmp_path, "a", [1, 2])
    p = write_annotation(tmp_path, "expr", "train", "a", expr_rows(2), expr_dir="EXPR_Classification_Challenge",
                         header=" Neutral, Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other ", ann="x/y")
    p.write_bytes(p.read_bytes().replace(b"\n", b"\r\n"))
    ds = read_affwild2(tmp_path)
    assert ds.videos["a"].labels["expr"].values.tolist() == [0, 1]


def test_read_template_file_order(tmp_path):
    p = write_text(tmp_path / "t.csv", "image_location\nb/00003.jpg\nb/00001.jpg\na/00002.jpg\n")
    got = read_template(p)
    assert list(got) == ["b", "a"] and got["b"].tolist() == [3, 1]


# ------------------------------------------------------------------ malformed input


def _err(tmp_path, name: str, body: str, task: str = "va", line: int | None = None):
    write_frames(tmp_path, "v", [1])
    path = write_text(tmp_path / "ann" / {"va": "VA_Estimation_Challenge", "expr": "EXPR_Recognition_Challenge",
                                          "au": "AU_Detection_Challenge"}[task] / "Train_Set" / name, body)
    with pytest.raises(DataFormatError) as ei:
        read_affwild2(tmp_path)
    msg = str(ei.value)
    assert str(path) in msg
    if line is not None:
        assert f"{path}:{line}:" in msg
    return msg


def test_wrong_header(tmp_path):
    assert "header" in _err(tmp_path, "v.txt", "arousal,valence\n0,0\n", line=1)


def test_missing_header(tmp_path):
    assert "header" in _err(tmp_path, "v.txt", "0.1,0.2\n0,0\n", line=1)


def test_header_names_are_strict(tmp_path):
    _err(tmp_path, "v.txt", EXPR_HEADER.replace("Happiness", "Happy") + "\n1\n", task="expr", line=1)


def test_wrong_column_count(tmp_path):
    assert "column" in _err(tmp_path, "v.txt", AU_HEADER + "\n" + ",".join(["0"] * 11) + "\n", task="au", line=2)


def test_va_out_of_range(tmp_path):
    assert "range" in _err(tmp_path, "v.txt", "valence,arousal\n0.1,0.1\n0.2,1.5\n", line=3)


def test_expr_out_of_range(tmp_path):
    _err(tmp_path, "v.txt", EXPR_HEADER + "\n1\n8\n", task="expr", line=3)


def test_au_value_not_binary(tmp_path):
    _err(tmp_path, "v.txt", AU_HEADER + "\n" + ",".join(["0"] * 11 + ["2"]) + "\n", task="au", line=2)


def test_not_a_number(tmp_path):
    assert "not a number" in _err(tmp_path, "v.txt", "valence,arousal\n0.1,abc\n", line=2)


def test_expr_not_an_integer(tmp_path):
    assert "integer" in _err(tmp_path, "v.txt", EXPR_HEADER + "\n1.5\n", task="expr", line=2)


def test_empty_file(tmp_path):
    assert "empty" in _err(tmp_path, "v.txt", "", line=1)


def test_escaping_video_name(tmp_path):
    assert "invalid video name" in _err(tmp_path, "..v.txt", "valence,arousal\n0,0\n")


def test_annotated_video_without_frames(tmp_path):
    assert "no frames folder" in _err(tmp_path, "ghost.txt", "valence,arousal\n0,0\n")


def test_video_in_train_and_val(tmp_path):
    write_frames(tmp_path, "v", [1])
    write_annotation(tmp_path, "va", "train", "v", va_rows(1))
    val = write_annotation(tmp_path, "va", "val", "v", va_rows(1))
    with pytest.raises(DataFormatError, match="also annotated") as ei:
        read_affwild2(tmp_path)
    assert str(val) in str(ei.value) or "Train_Set" in str(ei.value)


def test_test_video_without_frames_or_template(tmp_path):
    write_frames(tmp_path, "v", [1])
    p = write_text(tmp_path / "names_of_videos_in_each_test_set" / "Action_Unit_Detection_test.txt", "v\nghost\n")
    with pytest.raises(DataFormatError, match="no template") as ei:
        read_affwild2(tmp_path)
    assert f"{p}:2:" in str(ei.value)


def test_test_list_name_with_path(tmp_path):
    p = write_text(tmp_path / "names_of_videos_in_each_test_set" / "Expression_test.txt", "ok\n../etc\n")
    with pytest.raises(DataFormatError, match="invalid video name") as ei:
        read_affwild2(tmp_path)
    assert f"{p}:2:" in str(ei.value)


def test_bad_template_row(tmp_path):
    p = write_text(tmp_path / "t.txt", "image_location,valence,arousal\nv/00001.jpg,,\nv/frame.png,,\n")
    with pytest.raises(DataFormatError, match="NNNNN.jpg") as ei:
        read_template(p)
    assert f"{p}:3:" in str(ei.value)


def test_parse_annotation_unknown_task(tmp_path):
    with pytest.raises(ValueError, match="task"):
        parse_annotation(write_text(tmp_path / "a.txt", "x\n"), "valence")


@pytest.mark.parametrize("task, rows", [
    ("va", [" 0.5, -1", "-5,0.2", "0.3,-5", "1,1", "+0.25,0"]),
    ("expr", ["7", " -1", "0 ", "+3"]),
    ("au", au_rows(6, invalid={2}) + ["1,0,0,0,0,0,0,0,0,0,0,-1"]),
])
def test_fast_and_slow_parsers_agree(tmp_path, task, rows):
    from featurestore._affwild2_parse import HEADERS, _parse_fast, _parse_slow

    ncols = 1 if task == "expr" else len(HEADERS[task])
    fast = _parse_fast(rows, task, ncols)
    slow = _parse_slow(tmp_path / "x.txt", rows, task, ncols)
    assert fast is not None
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
