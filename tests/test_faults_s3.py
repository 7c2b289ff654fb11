"""Issue 15, item 8: the object-store server goes away in the middle of an extraction.

A real S3 server (moto's standalone server on loopback) sits behind a tiny loopback TCP proxy
that this test controls; the extraction job's S3 traffic goes through the proxy. In the middle
of a video (its second data chunk about to be stored), the proxy resets every connection and
refuses new ones, as a killed server does. The job (``jobs/extract.py``'s CLI, in process, no
Ray) must fail with one ``error:`` line naming the store, and leave no video visible that is not
complete. The server comes back (the proxy forwards again; moto's state lives on behind it, as a
restarted server with durable storage would), the same command is rerun, and the store is then
byte for byte what an undisturbed run writes: the same objects with the same bytes, and the same
metadata apart from the creation times and the feature set's random ``uid``.
"""

from __future__ import annotations

import json
import socket
import struct
import threading

import numpy as np
import pytest
import torch
from bad_inputs import tree_digest
from click.testing import CliRunner

import featurestore
from featurestore import layout as L
from featurestore.errors import UnknownKeyError
from featurestore.verify import verify

pytest.importorskip("moto")
pytest.importorskip("s3fs")


class FlakyProxy:
    """Forwards loopback TCP connections to ``target``. ``down()`` resets every open connection
    and resets new ones as they arrive (a stopped server); ``up()`` forwards again. ``trip_on``:
    bytes of a request line; the first request that carries them takes the server down before
    it is forwarded."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.trip_on, self.is_down, self.trips = target, None, False, 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._lock, self._open = threading.Lock(), set()
        threading.Thread(target=self._serve, daemon=True).start()

    @staticmethod
    def _reset(s: socket.socket) -> None:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
            s.close()
        except OSError:
            pass

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:  # closed
                return
            if self.is_down:
                self._reset(client)
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._open.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, request: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if request and self.trip_on is not None and self.trip_on in data:
                    self.trip_on = None
                    self.trips += 1
                    self.down()
                    return
                if self.is_down:
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                self._reset(s)
            with self._lock:
                self._open.difference_update((src, dst))

    def down(self) -> None:
        self.is_down = True
        with self._lock:
            live, self._open = list(self._open), set()
        for s in live:
            self._reset(s)

    def up(self) -> None:
        self.is_down = False

    def close(self) -> None:
        self.down()
        self._sock.close()


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on 127.0.0.1 behind a FlakyProxy; the AWS_* variables point at the proxy
    (what s3fs, the CLI and the job read), with one attempt per request so a dead server is an
    error in seconds, not after minutes of retries."""
    import os

    import boto3
    from moto.server import ThreadedMotoServer
    from s3fs import S3FileSystem

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    proxy = FlakyProxy((host, port))
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    S3FileSystem.clear_instance_cache()  # a cached client of another test would keep its endpoint
    direct = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    direct.create_bucket(Bucket="faults")
    try:
        yield {"proxy": proxy, "direct": direct}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        S3FileSystem.clear_instance_cache()
        proxy.close()
        server.stop()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Synthetic frames (LMDB pack) of 4 videos of ~300 frames and a tiny encoder checkpoint."""
    from encoders.checkpoint import save_checkpoint
    from encoders.mae import MaskedAutoencoder
    from encoders.presets import get_preset
    from featurestore.pack import pack_frames
    from featurestore.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("faults_s3")
    generate(root / "data", SynthConfig(videos=3, frames=300, size=32, faces=0, test_videos=1,
                                        seed=3, pair_fraction=0.0), progress=False)
    pack_frames(root / "data" / "affwild2", root / "pack", progress=False)
    torch.manual_seed(0)
    cfg = get_preset("tiny", img_size=32)
    save_checkpoint(root / "ckpt", MaskedAutoencoder(cfg), cfg, {})
    return {"tree": str(root / "data" / "affwild2"), "pack": str(root / "pack"),
            "ckpt": str(root / "ckpt"), "root": root}


def _extract(data, url: str):
    from jobs.extract import main as extract

    return CliRunner().invoke(extract, ["--frames", data["pack"], "--checkpoint", data["ckpt"],
                                        "--store", url, "--set", "mae", "--batch-size", "16",
                                        "--inline-frames", "1000000"])


def _objects(direct, prefix: str) -> dict[str, bytes]:
    """key (below prefix) -> bytes of every object of a store, read from the server directly."""
    out = {}
    for page in direct.get_paginator("list_objects_v2").paginate(Bucket="faults", Prefix=prefix):
        for obj in page.get("Contents", []):
            body = direct.get_object(Bucket="faults", Key=obj["Key"])["Body"].read()
            out[obj["Key"][len(prefix):]] = body
    return out


def _comparable(objects: dict[str, bytes]) -> dict[str, object]:
    """Objects with the per-creation fields (creation times, a set's random uid) left out."""
    out: dict[str, object] = {}
    for key, body in objects.items():
        if key.endswith("zarr.json"):
            doc = json.loads(body)
            attrs = doc.get("attributes", {})
            attrs.pop("created", None)
            attrs.pop("uid", None)
            attrs.get("provenance", {}).pop("created", None)
            out[key] = doc
        else:
            out[key] = body
    return out


def test_server_stopped_mid_extraction_then_rerun_is_byte_identical(s3, data):
    from featurestore.ingest import ingest_affwild2

    proxy, direct = s3["proxy"], s3["direct"]
    ref, url = "s3://faults/ref.zarr", "s3://faults/hit.zarr"
    for where in (ref, url):
        ingest_affwild2(data["tree"], where, progress=False)
    res = _extract(data, ref)  # the undisturbed run
    assert res.exit_code == 0, res.output
    store = featurestore.open(url)
    videos = store.videos()
    # the second chunk of the first video (after the first) that spans two chunks
    victim = next(v for v in videos[1:] if L.aligned_length(store.num_frames(v)) > L.CHUNK_FRAMES)
    chunk = store.offset(victim) // L.CHUNK_FRAMES + 1
    proxy.trip_on = f"/hit.zarr/features/mae/data/c/{chunk}/0 HTTP".encode()
    before = tree_digest(data["root"])

    res = _extract(data, url)
    lines = res.stderr.strip().splitlines()
    assert proxy.trips == 1 and res.exit_code == 1, res.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and url in lines[0], res.stderr
    assert "cannot reach the server" in lines[0] and victim in lines[0], lines[0]
    assert "Traceback" not in res.output

    # nothing half-committed is visible: the interrupted video has no commit flag, and what a
    # reader sees as committed is complete
    flags = _objects(direct, "hit.zarr/features/mae/committed/c/")
    assert str(videos.index(victim)) not in flags
    proxy.up()
    s = featurestore.open(url)
    done = s.committed("mae")
    assert victim not in done and len(done) < len(videos)
    with pytest.raises(UnknownKeyError):  # its chunks that did get stored are not readable
        s.read_windows("mae", [(victim, 0)], 10)
    assert verify(s, progress=False)["ok"]  # committed videos match their checksums

    res = _extract(data, url)  # the server is back: the rerun completes
    assert res.exit_code == 0, res.output
    assert f"{len(videos) - len(done)} video(s) written" in res.stdout
    s, r = featurestore.open(url), featurestore.open(ref)
    assert s.committed("mae") == videos and verify(s, progress=False)["ok"]
    for v in videos:
        np.testing.assert_array_equal(s.features("mae", v), r.features("mae", v))
    got, want = _objects(direct, "hit.zarr/"), _objects(direct, "ref.zarr/")
    assert sorted(got) == sorted(want)
    assert _comparable(got) == _comparable(want)
    assert tree_digest(data["root"]) == before  # the inputs were never written
