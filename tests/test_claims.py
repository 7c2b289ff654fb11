"""Two extraction drivers on the same set at once take disjoint videos (jobs.claims): claims are
kernel flocks, so a second process gets none of the videos a live first one holds, every video
once between two racing processes, and all of them once the holder is killed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from jobs.claims import Claims

VIDEOS = [f"v{i:02d}" for i in range(40)]
_HOLD = """
import json, sys
from jobs.claims import Claims
c = Claims(sys.argv[1], "mae")
print(json.dumps(c.take(json.loads(sys.argv[2]))), flush=True)
sys.stdin.readline()  # hold the claims until told (or killed)
"""


def _holder(repo, store: str, videos: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _HOLD, store, json.dumps(videos)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})


def test_a_live_driver_keeps_its_videos_a_killed_one_does_not(tmp_path, repo):
    store = str(tmp_path / "s.zarr")
    first = _holder(repo, store, VIDEOS[:30])
    assert json.loads(first.stdout.readline()) == VIDEOS[:30]
    with Claims(store, "mae") as mine:
        assert mine.take(VIDEOS) == VIDEOS[30:]  # the other driver's videos are left to it
    assert Claims(store, "other-set").take(VIDEOS[:2]) == VIDEOS[:2]  # claims are per set
    first.send_signal(signal.SIGKILL)
    first.wait()
    with Claims(store, "mae") as mine:
        assert mine.take(VIDEOS) == VIDEOS  # the kernel dropped the dead driver's locks


def test_two_racing_drivers_split_every_video_once(tmp_path, repo):
    store = str(tmp_path / "s.zarr")
    procs = [_holder(repo, store, VIDEOS), _holder(repo, store, VIDEOS[::-1])]
    got = [json.loads(p.stdout.readline()) for p in procs]
    for p in procs:
        p.communicate("\n")
    assert sorted(got[0] + got[1]) == VIDEOS  # each video claimed by exactly one driver
    assert not set(got[0]) & set(got[1])


@pytest.mark.ray
@pytest.mark.slow
def test_two_extraction_drivers_write_every_video_once(tmp_path, repo):
    """Two `python jobs/extract.py` on one new set, started together (each its own local Ray):
    both exit 0, the written counts add up to the store's videos (so none was
    written twice), every video is committed and the set verifies."""
    from test_extract import build_tiny_data

    import featurestore
    from featurestore.verify import verify

    d = build_tiny_data(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    cmd = [sys.executable, str(repo / "jobs" / "extract.py"), "--frames", d["pack"],
           "--checkpoint", d["ckpt"], "--store", d["store"], "--set", "twice", "--actors", "1",
           "--batch-size", "8"]
    procs = [subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=540) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    written = [int(re.match(r"(\d+) video\(s\) written", o[0].strip().splitlines()[-1]).group(1))
               for o in outs]
    store = featurestore.open(d["store"])
    assert sum(written) == len(store.videos()), written
    assert store.committed("twice") == store.videos()
    assert verify(store, progress=False)["ok"]
