"""Stores on a real S3 server on loopback (moto's standalone server, which s3fs's own tests use)
and read-only over plain HTTP (python's http.server): ingest, extraction with parallel writers
(exactly once), batched reads, the sampler, verify, the bounded local cache, and the errors of a
server that is down or refuses the credentials."""

from __future__ import annotations

import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from test_store import DIM, features_for, make_catalog, write_store

import featurestore
from featurestore.errors import StoreError
from featurestore.ingest import create_store
from featurestore.reader import StoreWindows
from featurestore.sampler import WindowSampler
from featurestore.verify import verify

pytest.importorskip("moto")
pytest.importorskip("s3fs")

QUICK_FAIL = {"config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
              "skip_instance_cache": True}


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on 127.0.0.1 that checks credentials: one IAM user may use S3.

    The user's keys go in the standard AWS_* variables (what s3fs, the CLI and Ray workers read).
    """
    import boto3
    import moto.settings
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boot = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="boot",
                aws_secret_access_key="boot")
    iam = boto3.client("iam", **boot)
    iam.create_user(UserName="trainer")
    iam.put_user_policy(UserName="trainer", PolicyName="s3", PolicyDocument=(
        '{"Version": "2012-10-17", "Statement": '
        '[{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}'))
    key = iam.create_access_key(UserName="trainer")["AccessKey"]
    boto3.client("s3", **boot).create_bucket(Bucket="stores")
    old_auth = moto.settings.INITIAL_NO_AUTH_ACTION_COUNT
    moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # from here on, credentials are checked
    env = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
           "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from s3fs import S3FileSystem

    S3FileSystem.clear_instance_cache()  # a client cached by another module keeps its endpoint
    try:
        yield {"endpoint": endpoint, **env}
    finally:
        S3FileSystem.clear_instance_cache()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = old_auth
        server.stop()


@pytest.fixture(scope="module")
def s3_store(s3):
    url = "s3://stores/small.zarr"
    catalog = make_catalog()
    create_store(url, catalog)
    w = featurestore.open(url, mode="a").create_feature_set("mae", DIM)
    for rec in catalog[:-1]:
        assert w.write_video(rec.name, features_for(rec))
    return url, catalog


def test_reads_verify_and_sampler_on_s3(s3_store, tmp_path):
    url, catalog = s3_store
    s = featurestore.open(url)
    assert s.committed("mae") == [r.name for r in catalog[:-1]]
    assert verify(s, progress=False)["ok"]
    src = StoreWindows(url, "mae", 150, task="va", local_cache=tmp_path / "cache",
                       local_cache_bytes=1 << 20)
    smp = WindowSampler.from_store(src.store, s.committed("mae"), 150, 100, seed=2, rank=0,
                                   world_size=2)
    other = WindowSampler.from_store(src.store, s.committed("mae"), 150, 100, seed=2, rank=1,
                                     world_size=2)
    items = smp.epoch_items(0) + other.epoch_items(0)
    got = src.read(items)
    for k, (v, a) in enumerate(items):
        m = min(150, s.num_frames(v) - a)
        rec = next(r for r in catalog if r.name == v)
        full = np.zeros((rec.num_frames, DIM), np.float16)
        full[:] = s.features("mae", v)  # the whole video through the other read path
        np.testing.assert_array_equal(got.x[k, :m], full[a:a + m])
    disk = src.store._disk
    assert disk.misses > 0 and 0 < disk.size_bytes() <= 1 << 20
    again = StoreWindows(url, "mae", 150, local_cache=tmp_path / "cache").read(items)
    np.testing.assert_array_equal(again.x, got.x)


def test_local_cache_stays_within_its_bound(s3_store, tmp_path):
    url, catalog = s3_store
    s = featurestore.open(url, local_cache=tmp_path / "c", local_cache_bytes=6000, cache_bytes=0)
    for rec in catalog[:-1]:
        s.read_windows("mae", [(rec.name, a) for a in range(0, rec.num_frames, 100)], 100)
        assert s._disk.size_bytes() <= 6000
    assert s._disk.size_bytes() > 0
    cold = featurestore.open(url, local_cache=tmp_path / "c2", cache_bytes=0)
    cold.read_windows("mae", [("c", 0)], 600)
    warm = featurestore.open(url, local_cache=tmp_path / "c2", cache_bytes=0)
    warm.read_windows("mae", [("c", 0)], 600)
    assert warm._disk.hits == 3 and warm._disk.misses == 0  # 600 frames = 3 chunks, all local


def test_a_damaged_local_cache_entry_is_fetched_again(s3_store, tmp_path):
    """The local cache holds stored bytes, crc32c included: an entry whose bytes changed on the
    local disk fails its checksum, is dropped and fetched again from the store (no error)."""
    url, _ = s3_store
    want = featurestore.open(url, cache_bytes=0).read_windows("mae", [("c", 0)], 600).x
    featurestore.open(url, local_cache=tmp_path / "c", cache_bytes=0).read_windows(
        "mae", [("c", 0)], 600)
    entries = sorted(p for p in (tmp_path / "c").rglob("*") if p.is_file())
    assert len(entries) == 3  # 600 frames = 3 chunks
    data = bytearray(entries[1].read_bytes())
    data[len(data) // 2] ^= 0x01
    entries[1].write_bytes(bytes(data))
    s = featurestore.open(url, local_cache=tmp_path / "c", cache_bytes=0)
    np.testing.assert_array_equal(s.read_windows("mae", [("c", 0)], 600).x, want)
    assert entries[1].read_bytes() != bytes(data)  # replaced by the store's bytes


def test_migrate_into_s3(s3, tmp_path):
    """``migrate`` of a layout-1 store into an s3:// NEW: same values; a damaged old store
    leaves no object at NEW."""
    import fsspec
    from test_checksums import make_v1

    from featurestore.migrate import migrate_store

    old = tmp_path / "old.zarr"
    write_store(old)
    make_v1(old)
    summary = migrate_store(old, "s3://stores/migrated.zarr")
    assert summary["from_layout_version"] == 1
    s = featurestore.open("s3://stores/migrated.zarr")
    for rec in make_catalog():
        np.testing.assert_array_equal(s.features("mae", rec.name)[rec.present],
                                      features_for(rec).astype(np.float16))
    (old / "frames" / "present" / "c" / "0").unlink()  # lost data in the old store
    with pytest.raises(StoreError, match="does not verify"):
        migrate_store(old, "s3://stores/migrated2.zarr")
    fs, _ = fsspec.url_to_fs("s3://stores/", skip_instance_cache=True)
    assert not fs.exists("stores/migrated2.zarr/zarr.json")
    assert not fs.find("stores/migrated2.zarr")


def test_bad_credentials_and_server_down(s3_store, s3):
    url, _ = s3_store
    with pytest.raises(StoreError, match=r"s3://stores/small.zarr: the server refused the credentials"):
        featurestore.open(url, storage_options={"key": "nobody", "secret": "wrong", **QUICK_FAIL})
    import socket

    # a port this test holds bound but never listens on: connections are refused, and no other
    # process can start listening there meanwhile (a stopped server's port could be reused)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        host, port = held.getsockname()
        with pytest.raises(StoreError, match=r"s3://stores/small.zarr: cannot reach the server"):
            featurestore.open(url, storage_options={"endpoint_url": f"http://{host}:{port}",
                                                    **QUICK_FAIL})


@pytest.mark.ray
@pytest.mark.slow
def test_extraction_into_s3_parallel_writers_exactly_once(s3, tmp_path):
    """The real extraction job (2 Ray actors writing different videos at once) into an S3 store
    ingested from a synthetic tree; a second run writes nothing; features equal a direct forward."""
    import ray
    from test_extract import build_tiny_data, direct_features

    from featurestore.ingest import ingest_affwild2
    from jobs.extract import ExtractConfig, run_extraction

    paths = build_tiny_data(tmp_path)
    url = "s3://stores/extract.zarr"
    ingest_affwild2(paths["tree"], url, progress=False)
    ray.shutdown()
    try:
        cfg = ExtractConfig(paths["pack"], paths["ckpt"], url, "mae", actors=2, batch_size=8,
                            every_s=1.0)
        stats = run_extraction(cfg)
        written = stats.written
        assert len({r.worker for r in stats.results}) == 2  # two writers at once
        assert sorted(written) == sorted(set(written)) and written
        assert run_extraction(cfg).written == []  # exactly once: nothing left to write
    finally:
        ray.shutdown()
    s = featurestore.open(url)
    assert sorted(s.committed("mae")) == sorted(s.videos()) and verify(s, progress=False)["ok"]
    for video in s.videos():
        np.testing.assert_allclose(s.features("mae", video)[s.present(video)].astype(np.float32),
                                   direct_features(paths, video).astype(np.float32),
                                   rtol=2e-3, atol=2e-3)
    prov = s.feature_info("mae").provenance
    assert prov["checkpoint_sha256"] and prov["preset"] == "tiny" and prov["input_size"] == 32
    assert prov["normalization"]["mean"] == [0.485, 0.456, 0.406] and prov["code_version"]


# ---------------------------------------------------------------- plain HTTP, read-only


@pytest.fixture(scope="module")
def http_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    catalog = make_catalog()
    create_store(str(root / "shared.zarr"), catalog)
    w = featurestore.open(root / "shared.zarr", mode="a").create_feature_set("mae", DIM)
    for rec in catalog[:-1]:
        w.write_video(rec.name, features_for(rec))

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/shared.zarr", str(root / "shared.zarr")
    finally:
        server.shutdown()
        server.server_close()


def test_http_store_reads_like_local_and_is_read_only(http_store):
    url, local = http_store
    h, s = featurestore.open(url), featurestore.open(local)
    assert h.feature_sets() == ["mae"] and h.committed("mae") == s.committed("mae")
    windows = [("a", 5), ("c", 1000), ("b_right", 0)]
    a, b = h.read_windows("mae", windows, 200, task="au"), s.read_windows("mae", windows, 200, task="au")
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert verify(featurestore.open(url), progress=False)["ok"]
    with pytest.raises(StoreError, match="served over http are read-only"):
        featurestore.open(url, mode="a")
    with pytest.raises(StoreError, match="no feature store here"):
        featurestore.open(url.replace("shared", "absent"))
