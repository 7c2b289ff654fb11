"""The store as Ray Data datasets on a simulated three-node cluster on loopback: every window (and
every frame) read exactly once across the nodes' workers, values equal to local reads."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest
from test_store import DIM, features_for, make_catalog

import featurestore
from featurestore.ingest import create_store
from featurestore.sampler import WindowSampler

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    import ray
    from ray.cluster_utils import Cluster

    path = str(tmp_path_factory.mktemp("raydata") / "store.zarr")
    catalog = make_catalog()
    create_store(path, catalog)
    w = featurestore.open(path, mode="a").create_feature_set("mae", DIM)
    for rec in catalog[:-1]:
        w.write_video(rec.name, features_for(rec))
    ray.shutdown()
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"node1": 1}})
    try:
        for i in (2, 3):
            c.add_node(num_cpus=1, resources={f"node{i}": 1})
        c.wait_for_nodes()
        ray.init(address=c.address)
        yield path
    finally:
        ray.shutdown()
        c.shutdown()


def test_windows_read_exactly_once_across_three_nodes(cluster):
    import ray

    from jobs.raydata import read_windows

    def _consume(shard, node: str):
        """Runs on one node: every (video, start, x checksum) of its shard, and where it ran."""
        import ray

        seen = []
        for batch in shard.iter_batches(batch_size=5, batch_format="numpy"):
            for v, a, x, pad in zip(batch["video"], batch["start"], batch["x"], batch["pad"],
                                    strict=True):
                seen.append((str(v), int(a), float(x[~pad].astype(np.float64).sum())))
        return node, ray.get_runtime_context().get_node_id(), seen

    path = cluster
    ds = read_windows(path, "mae", 120, 100, task="va", seed=3, windows_per_block=4)
    shards = ds.split(3)
    consume = ray.remote(num_cpus=0.5)(_consume)
    out = ray.get([consume.options(resources={f"node{k + 1}": 0.01}).remote(shard, f"node{k + 1}")
                   for k, shard in enumerate(shards)])
    assert len({node_id for _, node_id, _ in out}) == 3  # three nodes really consumed
    got = [item for _, _, seen in out for item in seen]
    store = featurestore.open(path)
    sampler = WindowSampler.from_store(store, store.committed("mae"), 120, 100)
    want = sampler.epoch_items(0)
    assert Counter((v, a) for v, a, _ in got) == Counter(want)  # each window exactly once
    local = store.read_windows("mae", [(v, a) for v, a, _ in got], 120, dtype=np.float32)
    sums = [float(x[~p].astype(np.float64).sum()) for x, p in zip(local.x, local.pad, strict=True)]
    np.testing.assert_allclose([s for _, _, s in got], sums, rtol=1e-6)


def test_frames_and_labels(cluster):
    from jobs.raydata import read_frames

    path = cluster
    store = featurestore.open(path)
    rows = read_frames(path, "mae", videos=["a", "c"], task="va", frames_per_block=200).take_all()
    assert [(r["video"], r["frame"]) for r in rows] == \
        [(v, k) for v in ("a", "c") for k in range(store.num_frames(v))]
    x = np.stack([r["x"] for r in rows if r["video"] == "c"])
    np.testing.assert_array_equal(x, store.features("mae", "c").astype(np.float32))
    values, valid = store.labels("va", "a")
    got_valid = np.array([r["valid"] for r in rows if r["video"] == "a"])
    np.testing.assert_array_equal(got_valid, valid)
