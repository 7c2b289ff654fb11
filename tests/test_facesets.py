"""Face-set readers on tiny files written in the real layouts, including malformed rows."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_affwild2 import jpeg_bytes, write_text

from featurestore.errors import DataFormatError
from featurestore.facesets import (
    FaceSet,
    discover_facesets,
    read_affectnet,
    read_fer2013,
    read_ferplus,
    read_image_folder,
    read_rafdb,
)

FERPLUS_HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"


def _pixels(v: int) -> str:
    return " ".join(str((v + i) % 256) for i in range(48 * 48))


def write_fer(d, rows=((0, "Training"), (6, "PublicTest"), (3, "Training"))):
    body = ["emotion,pixels,Usage"] + [f'{e},"{_pixels(i)}",{u}' for i, (e, u) in enumerate(rows)]
    return write_text(d / "fer2013.csv", "\n".join(body) + "\n")


def write_ferplus(d, votes=("10,0,0,0,0,0,0,0,0,0", "0,0,0,0,0,0,0,0,0,0", "0,0,0,0,0,0,0,0,6,4")):
    body = [FERPLUS_HEADER] + [f"Training,fer{i:07d}.png,{v}" for i, v in enumerate(votes)]
    return write_text(d / "fer2013new.csv", "\n".join(body) + "\n")


def write_rafdb(d):
    write_text(d / "EmoLabel" / "list_patition_label.txt", "train_00001.jpg 1\ntest_0001.jpg 7\n")
    (d / "Image" / "aligned").mkdir(parents=True)
    (d / "Image" / "original").mkdir(parents=True)
    (d / "Image" / "aligned" / "train_00001_aligned.jpg").write_bytes(jpeg_bytes(1, 10))
    (d / "Image" / "original" / "test_0001.jpg").write_bytes(jpeg_bytes(2, 12))
    return d


def write_affectnet(d):
    head = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"
    rows = ['1/a.jpg,0,0,9,9,"1;2;3",7,0.1,0.2', '2/b.jpg,0,0,9,9,"1;2",9,-2,-2']
    write_text(d / "training.csv", "\n".join([head, *rows]) + "\n")
    for rel, seed in (("1/a.jpg", 3), ("2/b.jpg", 4)):
        p = d / "Manually_Annotated_Images" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(jpeg_bytes(seed, 9))
    return d


def test_fer2013_grey_to_rgb_and_mapping(tmp_path):
    fs = read_fer2013(write_fer(tmp_path))
    assert isinstance(fs, FaceSet) and len(fs) == 3 and fs.name == "fer2013"
    face = fs[1]
    assert face.image.shape == (48, 48, 3) and face.image.dtype == np.uint8
    assert (face.image[..., 0] == face.image[..., 2]).all() and face.image[0, 1, 0] == 2
    assert [fs[i].label for i in range(3)] == [0, 6, 3]
    assert [fs[i].expr for i in range(3)] == [1, 0, 4]  # Angry->Anger, Neutral, Happy->Happiness
    assert len(read_fer2013(tmp_path / "fer2013.csv", usage="Training")) == 2


def test_ferplus_majority_vote(tmp_path):
    fs = read_ferplus(write_fer(tmp_path), write_ferplus(tmp_path))
    assert [fs[i].label for i in range(3)] == [0, -1, -1]  # neutral; no votes; unknown wins
    assert fs[0].expr == 0 and fs[2].expr == -1


def test_ferplus_row_count_mismatch(tmp_path):
    fer = write_fer(tmp_path)
    p = write_ferplus(tmp_path, votes=("1,0,0,0,0,0,0,0,0,0",))
    with pytest.raises(DataFormatError, match="has 1 rows") as ei:
        read_ferplus(fer, p)
    assert f"{p}:2:" in str(ei.value)


def test_ferplus_bad_votes(tmp_path):
    p = write_ferplus(tmp_path, votes=("1,0,0,0,0,0,0,0,0,0", "1,x,0,0,0,0,0,0,0,0", "1,0,0,0,0,0,0,0,0,0"))
    with pytest.raises(DataFormatError, match="not an integer") as ei:
        read_ferplus(write_fer(tmp_path), p)
    assert f"{p}:3:" in str(ei.value)


@pytest.mark.parametrize("row, why", [
    ('9,"{px}",Training', "out of range"),
    ('x,"{px}",Training', "not an integer"),
    ('1,"1 2 3",Training', "expected 2304 pixels"),
    ('1,"{px}"', "expected 3 columns"),
])
def test_fer2013_malformed_rows(tmp_path, row, why):
    p = write_text(tmp_path / "fer2013.csv",
                   "emotion,pixels,Usage\n" + f'0,"{_pixels(0)}",Training\n' + row.format(px=_pixels(1)) + "\n")
    with pytest.raises(DataFormatError, match=why) as ei:
        read_fer2013(p)
    assert f"{p}:3:" in str(ei.value)


def test_fer2013_missing_column(tmp_path):
    p = write_text(tmp_path / "fer2013.csv", "label,pixels\n0,1\n")
    with pytest.raises(DataFormatError, match="emotion") as ei:
        read_fer2013(p)
    assert f"{p}:1:" in str(ei.value)


def test_rafdb_aligned_then_original(tmp_path):
    fs = read_rafdb(write_rafdb(tmp_path))
    assert len(fs) == 2
    assert fs[0].image.shape == (10, 10, 3) and fs[0].label == 1 and fs[0].expr == 6  # Surprise
    assert fs[1].image.shape == (12, 12, 3) and fs[1].label == 7 and fs[1].expr == 0  # Neutral


@pytest.mark.parametrize("line, why", [("train_00001.jpg 8", "out of range"),
                                       ("train_00001.jpg", "expected 'name label'"),
                                       ("missing.jpg 2", "no image")])
def test_rafdb_malformed(tmp_path, line, why):
    write_rafdb(tmp_path)
    p = write_text(tmp_path / "EmoLabel" / "list_patition_label.txt", f"train_00001.jpg 1\n{line}\n")
    with pytest.raises(DataFormatError, match=why) as ei:
        read_rafdb(tmp_path)
    assert f"{p}:2:" in str(ei.value)


def test_affectnet_labels(tmp_path):
    fs = read_affectnet(write_affectnet(tmp_path))
    assert fs.name == "affectnet-training" and len(fs) == 2
    assert (fs[0].label, fs[0].expr) == (7, 7)  # Contempt -> Other
    assert (fs[1].label, fs[1].expr) == (9, -1)  # Uncertain
    assert fs[1].image.shape == (9, 9, 3)


def test_affectnet_malformed(tmp_path):
    write_affectnet(tmp_path)
    p = tmp_path / "training.csv"
    p.write_text(p.read_text() + "../x.jpg,0,0,9,9,,1,0,0\n")
    with pytest.raises(DataFormatError, match="invalid image path") as ei:
        read_affectnet(tmp_path)
    assert f"{p}:4:" in str(ei.value)


def test_image_folder_and_unreadable_image(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "x.jpg").write_bytes(jpeg_bytes(5, 6))
    bad = tmp_path / "a" / "b" / "y.PNG"
    bad.write_bytes(b"not a png")
    (tmp_path / "a" / "notes.txt").write_text("skip")
    fs = read_image_folder(tmp_path / "a")
    assert len(fs) == 2 and fs[1].label == fs[1].expr == -1
    assert fs[1].image.shape == (6, 6, 3)  # sorted paths: a/b/y.PNG, then a/x.jpg
    with pytest.raises(DataFormatError, match="cannot read image") as ei:
        fs[0]
    assert str(bad) in str(ei.value)


def test_discover_every_layout(tmp_path):
    write_fer(tmp_path / "fer")
    write_ferplus(tmp_path / "ferplus")
    write_rafdb(tmp_path / "raf" / "basic")
    write_affectnet(tmp_path / "affectnet")
    sets = discover_facesets(tmp_path)
    assert sorted((s.name, len(s)) for s in sets) == [
        ("affectnet-training", 2), ("ferplus", 3), ("rafdb", 2)]


def test_discover_falls_back_to_images(tmp_path):
    write_fer(tmp_path / "only_fer")
    assert [s.name for s in discover_facesets(tmp_path / "only_fer")] == ["fer2013"]
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "f.jpg").write_bytes(jpeg_bytes(7, 5))
    sets = discover_facesets(tmp_path / "imgs")
    assert [(s.name, len(s)) for s in sets] == [("images-imgs", 1)]
    (tmp_path / "nothing").mkdir()
    assert discover_facesets(tmp_path / "nothing") == []
