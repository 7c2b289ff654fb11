"""Start, describe and stop the project's loopback-only local Ray head (``ray start --head``)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from featurestore.atomic import atomic_write_text
from jobs.raylocal.loopback import LOOPBACK, local_env
from jobs.raylocal.procs import cmdline, group_pids, kill_group, start_time

log = logging.getLogger(__name__)

HEAD_FILE = "head.json"
OWNER_FILE = "owner.json"  # in the head's /tmp folder: the process that owns the head
_TEMP_PREFIX = "affray-"
# A unix socket path holds at most 107 bytes. Ray puts its sockets at
# <temp_dir>/session_<%Y-%m-%d_%H-%M-%S_%f>_<pid>/sockets/<name>; the longest name today is
# "dash_" + a dashboard module name (about 20 bytes): 32 leaves room. pid_max is at most 2**22.
_SOCKET_PATH_MAX = 107
_RAY_SOCKET_SUFFIX = len("/session_2026-01-01_00-00-00_000000_4194304/sockets/") + 32
_SHORT_TEMP_BASE = "/tmp"  # not $TMPDIR: that can be as long as any other path
_STARTED: list[Path] = []  # run folders of the heads this process started, for stop_head()


@dataclass(frozen=True)
class HeadInfo:
    """Where a head started by `start_head` listens and how to reach it (``<run_dir>/ray/head.json``)."""

    address: str  # GCS address "127.0.0.1:<port>" for ray.init / worker nodes
    dashboard_url: str  # "http://127.0.0.1:<port>", the job server of `ray job submit`
    token_path: str
    temp_dir: str
    pgid: int  # process group holding every process of this head
    run_dir: str

    def __post_init__(self) -> None:
        if self.pgid <= 1:
            raise ValueError(f"HeadInfo.pgid must be > 1, got {self.pgid!r}")
        if not self.dashboard_url.startswith("http://"):
            raise ValueError(f"HeadInfo.dashboard_url must be http://..., got {self.dashboard_url!r}")

    def client_env(self) -> dict[str, str]:
        """Variables a client on this machine needs (`ray job submit`, `ray status`)."""
        return {
            "RAY_ADDRESS": self.dashboard_url,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": self.token_path,
        }


def head_file(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "ray" / HEAD_FILE


def read_head(run_dir: str | os.PathLike) -> HeadInfo:
    """The `HeadInfo` written by `start_head` for ``run_dir``; FileNotFoundError if none."""
    path = head_file(run_dir)
    try:
        data = json.loads(path.read_text())
        return HeadInfo(**data)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no Ray head was started for this run folder") from None
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a head description written by start_head: {err}") from err


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_busy(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _temp_dir() -> Path:
    """A fresh private folder with a short path for Ray's session files and unix sockets.

    Always under /tmp with a short unique name (never inside the run folder, whose path can be
    any length), so that the longest socket path Ray builds below it fits; `stop_head` removes it.
    """
    temp = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX, dir=_SHORT_TEMP_BASE))  # mode 0700
    longest = len(os.fsencode(temp)) + _RAY_SOCKET_SUFFIX
    if longest > _SOCKET_PATH_MAX:
        shutil.rmtree(temp, ignore_errors=True)
        raise RuntimeError(f"{temp}: Ray's socket paths below it would be {longest} bytes, more "
                           f"than the {_SOCKET_PATH_MAX} a unix socket path holds")
    return temp


def write_owner(temp_dir: Path, owner_pid: int, pgid: int | None = None,
                run_dir: Path | None = None) -> None:
    """Record who owns a /tmp folder of ours (a head's, or a local instance's token folder) and
    the process group to stop once the owner is gone (what `sweep_orphan_heads` reads)."""
    owner = {"pid": owner_pid, "start_time": start_time(owner_pid), "pgid": pgid,
             "run_dir": str(run_dir.resolve()) if run_dir else None, "temp_dir": str(temp_dir)}
    atomic_write_text(temp_dir / OWNER_FILE, json.dumps(owner), mode=0o600)


def sweep_orphan_heads(base: str | os.PathLike = _SHORT_TEMP_BASE) -> list[Path]:
    """Stop the local heads whose owner process is gone, and remove their /tmp folders (and the
    token folders of local instances whose driver is gone); returns the folders removed.

    A head started by `start_head` records its owner (pid and start time from /proc, so a
    reused pid is not taken for the owner) in ``<temp_dir>/owner.json``. A head whose owner is
    dead (a killed test run, a crashed driver) is stopped as `stop_head` would: its process
    group is signalled, but only if one of its processes still runs from that folder (a group id
    reused by something else is left alone), then its folder and ``head.json`` are removed.
    Heads whose owner lives, and folders without an owner record, are never touched.
    """
    swept = []
    for temp in sorted(Path(base).glob(f"{_TEMP_PREFIX}*")):
        try:
            owner = json.loads((temp / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not a head folder, another user's, or a head still being started
        if owner.get("start_time") is None or start_time(owner["pid"]) == owner["start_time"]:
            continue  # the owner lives
        pgid = owner.get("pgid")
        members = group_pids(pgid) if pgid else []
        if any(str(temp) in cmdline(pid) for pid in members):
            log.warning("stopping Ray head %s: its owner process %d is gone", temp, owner["pid"])
            kill_group(pgid)
            if any(str(temp) in cmdline(pid) for pid in group_pids(pgid)):
                continue  # could not be stopped: keep its folder
        run_dir = owner.get("run_dir")
        try:
            if run_dir and read_head(run_dir).temp_dir == str(temp):
                head_file(run_dir).unlink(missing_ok=True)
        except (OSError, ValueError):
            pass  # that run folder's head.json is gone or belongs to another head
        shutil.rmtree(temp, ignore_errors=True)
        swept.append(temp)
    return swept


def start_head(
    run_dir: str | os.PathLike, num_cpus: int | None = None, dashboard_port: int | None = 8265,
    owner_pid: int | None = None, idle_workers: int | None = None,
) -> str:
    """Start a loopback-only Ray head with the dashboard/job server; returns its GCS address.

    Every port is bound to 127.0.0.1 and every process joins one process group, which
    `stop_head` signals. ``dashboard_port=None`` (or 0) picks a free port. ``owner_pid`` (default:
    this process) is the process the head belongs to: once it is gone, the next `start_head` on
    this machine stops the head (`sweep_orphan_heads`). ``idle_workers``: how many idle workers
    the raylet keeps (Ray's ``num_workers_soft_limit``; default its CPU count). A worker serves
    one job, so with several drivers at once the default makes the raylet kill one job's idle
    workers while another's tasks run, and each of the demo's sequence runs started a new worker
    (torch imported again). Raises RuntimeError when the dashboard port is taken or ``ray start``
    fails (its output is in the message).
    """
    run_dir = Path(run_dir)
    sweep_orphan_heads()  # heads a killed owner left running (logged as they are stopped)
    if num_cpus is not None and num_cpus < 1:
        raise ValueError(f"num_cpus must be >= 1, got {num_cpus!r}")
    if idle_workers is not None and idle_workers < 1:
        raise ValueError(f"idle_workers must be >= 1, got {idle_workers!r}")
    if head_file(run_dir).exists() and head_alive(read_head(run_dir)):
        raise RuntimeError(f"{head_file(run_dir)}: a head is already running for this run folder")
    if not dashboard_port:
        dashboard_port = free_port()
    elif _port_busy(dashboard_port):
        raise RuntimeError(f"dashboard_port {dashboard_port} is in use; pass another port")
    (run_dir / "ray").mkdir(parents=True, exist_ok=True)
    token_path = (run_dir / "ray" / "auth_token").resolve()
    atomic_write_text(token_path, secrets.token_hex(32), mode=0o600)
    temp_dir = _temp_dir()
    owner_pid = os.getpid() if owner_pid is None else owner_pid
    write_owner(temp_dir, owner_pid, None, run_dir)  # before any Ray process exists
    port = free_port()
    cmd = [
        str(Path(sys.executable).parent / "ray"), "start", "--head",
        f"--node-ip-address={LOOPBACK}", f"--port={port}",
        "--include-dashboard=true", f"--dashboard-host={LOOPBACK}",
        f"--dashboard-port={dashboard_port}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--ray-client-server-port={free_port()}",
        "--disable-usage-stats", f"--temp-dir={temp_dir}",
    ]  # fmt: skip
    if num_cpus is not None:
        cmd.append(f"--num-cpus={num_cpus}")
    env = local_env({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path)})
    if idle_workers is not None:
        env["RAY_num_workers_soft_limit"] = str(idle_workers)  # read by the raylet at start
    log.info("starting Ray head: %s", shlex.join(cmd))
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    write_owner(temp_dir, owner_pid, proc.pid, run_dir)  # the group to stop if the owner dies
    output, _ = proc.communicate()
    info = HeadInfo(
        address=f"{LOOPBACK}:{port}",
        dashboard_url=f"http://{LOOPBACK}:{dashboard_port}",
        token_path=str(token_path),
        temp_dir=str(temp_dir),
        pgid=proc.pid,  # start_new_session: the group id is the pid of `ray start`
        run_dir=str(run_dir.resolve()),
    )
    if proc.returncode != 0:
        kill_group(info.pgid)
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise RuntimeError(f"ray start failed (exit {proc.returncode}):\n{output}")
    atomic_write_text(head_file(run_dir), json.dumps(dataclasses.asdict(info), indent=2), mode=0o644)
    _STARTED.append(run_dir)
    log.info("Ray head at %s, dashboard %s", info.address, info.dashboard_url)
    return info.address


def head_alive(info: HeadInfo) -> bool:
    return bool(group_pids(info.pgid))


def stop_head(run_dir: str | os.PathLike | None = None) -> bool:
    """Stop the head started for ``run_dir`` (default: the last one this process started).

    Signals only that head's process group (SIGTERM, then SIGKILL); other Ray clusters on the
    machine are left alone. Returns False when there was nothing to stop.
    """
    if run_dir is None:
        if not _STARTED:
            return False
        run_dir = _STARTED.pop()
    try:
        info = read_head(run_dir)
    except FileNotFoundError:
        return False
    alive = head_alive(info)
    kill_group(info.pgid)
    head_file(run_dir).unlink(missing_ok=True)
    shutil.rmtree(info.temp_dir, ignore_errors=True)  # the short folder made by _temp_dir
    return alive
