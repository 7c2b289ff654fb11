"""`affvideo faces` on real clips: bad input, two subjects, constant memory, the Ray job."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from featurestore.video.decode import iter_frames
from featurestore.video.faces import FacesConfig, extract_faces
from featurestore.video.meta import load_record, record_path
from jobs.video_cli import main

pytest_plugins = ["realmedia"]  # fixtures: clips, mtcnn_weights, mtcnn


def _write_video(path, frames, fps=30.0):
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert vw.isOpened()
    for f in frames:
        vw.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    vw.release()
    return path


def _bad_videos(folder, clips):
    """Files that must each fail with a message naming them."""
    good = clips["single_face.mp4"].read_bytes()
    (folder / "text.mp4").write_text("this is not a video\n")
    (folder / "cut.mp4").write_bytes(good[: len(good) // 2])      # index at the end: unreadable
    (folder / "empty.mov").write_bytes(b"")
    vw = cv2.VideoWriter(str(folder / "zero.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 64))
    vw.release()                                                  # a container with no frame
    return ["text.mp4", "cut.mp4", "empty.mov", "zero.avi"]


def test_bad_videos_fail_by_name_and_the_batch_goes_on(clips, mtcnn_weights, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    bad = _bad_videos(folder, clips)
    os.symlink(clips["single_face.mp4"], folder / "single_face.mp4")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["faces", str(folder), str(out), "--detect-every", "12",
                                    "--no-progress"])
    assert res.exit_code == 1, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == len(bad)
    for name in bad:
        assert any(name in e for e in errors), (name, errors)
        stem = name.rsplit(".", 1)[0]
        assert not record_path(out, stem).exists()
        assert not (out / "cropped_aligned" / stem).exists()
    assert load_record(record_path(out, "single_face")).present.all()
    assert not any((out / ".partial").iterdir())          # nothing half-written left behind
    assert "Traceback" not in res.output


def test_missing_inputs_and_models_are_one_error_line(clips, tmp_path, mtcnn_weights):
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(main, ["faces", str(tmp_path / "empty"), str(tmp_path / "o")])
    assert res.exit_code == 2 and res.output.startswith("error:") and "empty" in res.output
    res = CliRunner().invoke(main, ["emotions", str(clips["single_face.mp4"]), str(tmp_path / "o"),
                                    "--heads", str(tmp_path / "none")])
    assert res.exit_code == 2 and res.output.startswith("error:") and "none" in res.output
    res = CliRunner().invoke(main, ["faces", str(clips["single_face.mp4"]), str(tmp_path / "o"),
                                    "--detector", str(tmp_path / "yunet.onnx")])
    assert res.exit_code == 2 and "yunet.onnx" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder: cannot make one unreadable")
def test_unreadable_folder_is_named(tmp_path, mtcnn_weights):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        res = CliRunner().invoke(main, ["faces", str(locked), str(tmp_path / "o")])
    finally:
        locked.chmod(0o755)
    assert res.exit_code == 2 and "locked" in res.output


def test_two_subjects_become_left_and_right(clips, mtcnn, tmp_path):
    photo = cv2.cvtColor(cv2.imread(str(clips["multi_face.jpg"])), cv2.COLOR_BGR2RGB)
    frames = [np.roll(photo, 3 * k, axis=1) for k in range(4)]  # a slow pan: 4 frames
    video = _write_video(tmp_path / "group.avi", frames)
    results, failed = extract_faces(video, tmp_path / "out", mtcnn, FacesConfig(subjects=2),
                                    progress=False)
    assert not failed and results[0].names == ("group_left", "group_right")
    left = load_record(record_path(tmp_path / "out", "group_left"))
    right = load_record(record_path(tmp_path / "out", "group_right"))
    assert left.present.all() and right.present.all()
    assert (left.box[:, 0] < right.box[:, 0]).all()
    # tracked, not re-chosen: each subject's box follows the pan (3 px a frame) up to the
    # detector's jitter, far less than the distance to the next face (about one face width)
    for rec in (left, right):
        centre = rec.box[:, [0, 2]].mean(axis=1)
        width = rec.box[:, 2] - rec.box[:, 0]
        assert (np.abs(np.diff(centre) - 3) < 0.2 * width[1:]).all(), centre
    for name in results[0].names:
        assert len(list((tmp_path / "out" / "cropped_aligned" / name).glob("*.jpg"))) == 4


PEAK = """
import resource, sys
from jobs.video_cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_kb(args):
    proc = subprocess.run([sys.executable, "-c", PEAK, *args], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(proc.stdout.rsplit("PEAK_KB", 1)[1].split()[0])


def test_ten_times_longer_video_keeps_the_same_peak_memory(clips, mtcnn_weights, tmp_path):
    frames = list(iter_frames(clips["single_face.mp4"]))
    short = _write_video(tmp_path / "short.avi", frames)
    vw = cv2.VideoWriter(str(tmp_path / "long.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30.0,
                         frames[0].shape[1::-1])
    for _ in range(10):
        for f in frames:
            vw.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    vw.release()
    del frames
    common = ["--detect-every", "60", "--no-progress"]
    a = _peak_kb(["faces", str(short), str(tmp_path / "a"), *common])
    b = _peak_kb(["faces", str(tmp_path / "long.avi"), str(tmp_path / "b"), *common])
    assert load_record(record_path(tmp_path / "b", "long")).num_frames == 720
    # 648 more frames of 640x360 RGB would be ~450 MB if they were held; allow 40 MB of noise
    assert b - a < 40 * 1024, (a, b)


@pytest.mark.ray
def test_ray_job_one_task_per_video(clips, mtcnn_weights, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    os.symlink(clips["single_face.mp4"], folder / "single_face.mp4")
    (folder / "broken.mp4").write_text("nope")
    from jobs.faces import run_faces

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    try:
        out = run_faces([str(folder / "single_face.mp4"), str(folder / "broken.mp4")],
                        str(tmp_path / "out"), FacesConfig(detect_every=12).__dict__)
    finally:
        ray.shutdown()
    assert out[0]["faces"] == {"single_face": 72} and "broken.mp4" in out[1]["error"]
    assert load_record(record_path(tmp_path / "out", "single_face")).num_frames == 72
    print(json.dumps(out))
