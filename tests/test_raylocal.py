"""The project's local Ray head: loopback-only sockets, `ray job submit` with its token, stop."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import featurestore
from jobs import raylocal

REPO = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    # A run folder of any length works: Ray's sockets live in a short folder under /tmp.
    run = tmp_path_factory.mktemp("rayhead") / ("a-long-run-folder-name" * 6)
    address = raylocal.start_head(run, num_cpus=2, dashboard_port=None, idle_workers=5)
    try:
        yield run, address, raylocal.read_head(run)
    finally:
        raylocal.stop_head(run)


def test_ray_temp_dir_is_short_enough_for_every_socket_ray_makes():
    from jobs.raylocal import head as H

    temp = H._temp_dir()
    try:
        assert temp.is_dir() and (temp.stat().st_mode & 0o077) == 0
        assert len(os.fsencode(temp)) + H._RAY_SOCKET_SUFFIX <= H._SOCKET_PATH_MAX
    finally:
        temp.rmdir()


def test_head_description_is_validated_and_missing_heads_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Ray head"):
        raylocal.read_head(tmp_path)
    with pytest.raises(ValueError, match="pgid"):
        raylocal.HeadInfo("127.0.0.1:1", "http://127.0.0.1:2", "t", "d", 0, "r")
    assert raylocal.stop_head(tmp_path) is False


@pytest.mark.ray
def test_every_socket_of_the_head_listens_on_loopback_only(head):
    run, address, info = head
    assert address == info.address and address.startswith("127.0.0.1:")
    assert (Path(info.token_path).stat().st_mode & 0o077) == 0  # token readable by owner only
    assert Path(info.token_path).is_relative_to(run)  # not ~/.ray/auth_token
    sockets = raylocal.listening_sockets(info.pgid)
    ports = {port for _, _, port in sockets}
    assert int(address.rsplit(":", 1)[1]) in ports  # GCS
    assert int(info.dashboard_url.rsplit(":", 1)[1]) in ports  # dashboard / job server
    exposed = [s for s in sockets if s[1] not in raylocal.LOOPBACK_HOSTS]
    assert not exposed, exposed
    from click.testing import CliRunner

    from jobs.raylocal.cli import cli

    status = CliRunner().invoke(cli, ["status", "--run-dir", str(run)])
    assert status.exit_code == 0 and " 0 not on loopback" in status.output, status.output
    env = CliRunner().invoke(cli, ["env", "--run-dir", str(run)])
    assert f"export RAY_ADDRESS={info.dashboard_url}" in env.output
    assert f"RAY_AUTH_TOKEN_PATH={info.token_path}" in env.output
    with pytest.raises(RuntimeError, match="already running"):
        raylocal.start_head(run, dashboard_port=None)


@pytest.mark.ray
@pytest.mark.slow
def test_ray_job_submit_runs_the_extraction_job(head, tmp_path):
    from test_extract import assert_set_equals_direct, build_tiny_data

    _, _, info = head
    data = build_tiny_data(tmp_path)
    env = dict(os.environ, **info.client_env())
    cmd = [RAY, "job", "submit", "--working-dir", str(REPO), "--", "python", "jobs/extract.py",
           "--frames", data["pack"], "--checkpoint", data["ckpt"], "--store", data["store"],
           "--set", "submitted", "--actors", "1", "--batch-size", "8"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "frames/s" in proc.stdout  # the driver's progress and summary reach `ray job` output
    store = featurestore.open(data["store"])
    assert sorted(store.committed("submitted")) == sorted(store.videos())
    assert_set_equals_direct(data, "submitted")
    # without the token the job server refuses the client
    bad = dict(env, RAY_AUTH_TOKEN="0" * 64)
    bad.pop("RAY_AUTH_TOKEN_PATH")
    refused = subprocess.run([RAY, "job", "list"], env=bad, capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    assert refused.returncode != 0 and "token" in (refused.stdout + refused.stderr).lower()


def _start_owned_head(run: Path) -> tuple[subprocess.Popen, raylocal.HeadInfo]:
    """A head started by another process (its owner), which then stays alive until killed."""
    code = ("import sys, time\nfrom jobs.raylocal import start_head\n"
            "start_head(sys.argv[1], num_cpus=1, dashboard_port=None)\n"
            "print('up', flush=True)\ntime.sleep(3600)\n")
    owner = subprocess.Popen([sys.executable, "-c", code, str(run)], cwd=REPO, text=True,
                             stdout=subprocess.PIPE)
    line = owner.stdout.readline()  # blocks until the head is up (or the owner failed)
    assert line.strip() == "up", f"the owner could not start its head (exit {owner.poll()})"
    return owner, raylocal.read_head(run)


@pytest.mark.ray
def test_heads_of_dead_owners_are_swept_and_live_ones_never(head, tmp_path):
    """A killed test run leaves its head running; the next start_head stops it, and only it."""
    from jobs.raylocal.head import write_owner

    _, _, mine = head  # owned by this (live) process
    owner, orphan = _start_owned_head(tmp_path / "orphan")
    # token folders of local instances (connect.py): one of the owner's, one of this process
    tokens = [Path(tempfile.mkdtemp(prefix="affray-token-", dir="/tmp")) for _ in range(2)]
    write_owner(tokens[0], owner.pid)
    write_owner(tokens[1], os.getpid())
    try:
        assert raylocal.head_alive(orphan)
        swept = raylocal.sweep_orphan_heads()
        assert Path(orphan.temp_dir) not in swept and tokens[0] not in swept  # owner lives
        assert raylocal.head_alive(orphan) and raylocal.head_alive(mine)
        owner.kill()  # SIGKILL: no atexit, no stop_head; the head keeps running on its own
        owner.wait()
        assert raylocal.head_alive(orphan)
        raylocal.start_head(tmp_path / "next", num_cpus=1, dashboard_port=None)  # sweeps first
        try:
            assert not raylocal.head_alive(orphan)
            assert not Path(orphan.temp_dir).exists()
            assert not raylocal.head_file(tmp_path / "orphan").exists()
            assert not tokens[0].exists() and tokens[1].exists()
            assert raylocal.head_alive(mine) and raylocal.head_alive(raylocal.read_head(tmp_path / "next"))
        finally:
            raylocal.stop_head(tmp_path / "next")
    finally:
        owner.kill()
        owner.wait()
        raylocal.stop_head(tmp_path / "orphan")  # nothing left if the sweep failed
        for folder in tokens:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.ray
def test_the_raylet_is_told_how_many_idle_workers_to_keep(head, tmp_path):
    """Ray reads ``RAY_num_workers_soft_limit`` from the raylet's environment."""
    from jobs.raylocal.procs import group_pids

    _, _, info = head
    environ = {}
    for pid in group_pids(info.pgid):
        try:
            cmd, env = (Path(f"/proc/{pid}/{n}").read_bytes() for n in ("cmdline", "environ"))
        except OSError:
            continue
        if b"raylet/raylet" in cmd:
            environ = dict(e.split(b"=", 1) for e in env.split(b"\0") if b"=" in e)
    assert environ.get(b"RAY_num_workers_soft_limit") == b"5"
    with pytest.raises(ValueError, match="idle_workers"):
        raylocal.start_head(tmp_path, idle_workers=0)


def test_stop_head_ends_every_process_of_the_head(head):
    run, _, info = head
    assert raylocal.stop_head(run) is True
    assert not raylocal.head_alive(info)
    assert not raylocal.head_file(run).exists()
    temp = Path(info.temp_dir)
    assert temp.is_relative_to(run) or not temp.exists()  # nothing left outside the run folder
    assert raylocal.stop_head(run) is False

