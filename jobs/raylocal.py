"""A loopback-only local Ray head managed by the project, and `init_ray` for entry points.

Ray binds its services on every interface unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is in
the environment of the processes that start them (see shared/PLATFORM.md). That setting also
stops other machines from joining, so it is the *local* default only: an ``--address`` or
``RAY_ADDRESS`` given by the user always wins and is used as is.

Ray 2.60 turns token authentication on for local clusters and would write ``~/.ray/auth_token``.
`start_head` instead writes a fresh token inside the run folder and points every process at it
with ``RAY_AUTH_TOKEN_PATH``; `HeadInfo.client_env()` gives the variables that `ray job submit`
(or any client on this machine) needs::

    python -m jobs.raylocal start --run-dir runs/ray
    eval "$(python -m jobs.raylocal env --run-dir runs/ray)"
    ray job submit --working-dir . -- python jobs/extract.py ...
    python -m jobs.raylocal stop --run-dir runs/ray
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
HEAD_FILE = "head.json"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::ffff:127.0.0.1", "::1", "localhost"})
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


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


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
    temp = Path(tempfile.mkdtemp(prefix="affray-", dir=_SHORT_TEMP_BASE))  # mode 0700
    longest = len(os.fsencode(temp)) + _RAY_SOCKET_SUFFIX
    if longest > _SOCKET_PATH_MAX:
        shutil.rmtree(temp, ignore_errors=True)
        raise RuntimeError(f"{temp}: Ray's socket paths below it would be {longest} bytes, more "
                           f"than the {_SOCKET_PATH_MAX} a unix socket path holds")
    return temp


def _local_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env[LOOPBACK_ENV] = "0"
    # Jobs run `python ...` through the PATH of the raylet: put this interpreter first.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return env


def start_head(
    run_dir: str | os.PathLike, num_cpus: int | None = None, dashboard_port: int | None = 8265
) -> str:
    """Start a loopback-only Ray head with the dashboard/job server; returns its GCS address.

    Every port is bound to 127.0.0.1 and every process joins one process group, which
    `stop_head` signals. ``dashboard_port=None`` (or 0) picks a free port. Raises RuntimeError when the
    dashboard port is taken or ``ray start`` fails (its output is in the message).
    """
    run_dir = Path(run_dir)
    if num_cpus is not None and num_cpus < 1:
        raise ValueError(f"num_cpus must be >= 1, got {num_cpus!r}")
    if head_file(run_dir).exists() and head_alive(read_head(run_dir)):
        raise RuntimeError(f"{head_file(run_dir)}: a head is already running for this run folder")
    if not dashboard_port:
        dashboard_port = free_port()
    elif _port_busy(dashboard_port):
        raise RuntimeError(f"dashboard_port {dashboard_port} is in use; pass another port")
    (run_dir / "ray").mkdir(parents=True, exist_ok=True)
    token_path = (run_dir / "ray" / "auth_token").resolve()
    _write_atomic(token_path, secrets.token_hex(32), mode=0o600)
    temp_dir = _temp_dir()
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
    env = _local_env({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path)})
    log.info("starting Ray head: %s", shlex.join(cmd))
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
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
        _kill_group(info.pgid)
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise RuntimeError(f"ray start failed (exit {proc.returncode}):\n{output}")
    _write_atomic(head_file(run_dir), json.dumps(dataclasses.asdict(info), indent=2))
    _STARTED.append(run_dir)
    log.info("Ray head at %s, dashboard %s", info.address, info.dashboard_url)
    return info.address


_STAT_FIELDS = {"pgrp": 2, "session": 3}  # index after "pid (comm) ": state ppid pgrp session


def proc_pids(field: str, value: int) -> list[int]:
    """Live (non-zombie) processes whose /proc stat ``field`` ("pgrp" or "session") is ``value``."""
    index = _STAT_FIELDS[field]
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[index]) == value:
            pids.append(int(entry))
    return pids


def _group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes of group ``pgid`` (Linux)."""
    return proc_pids("pgrp", pgid)


def head_alive(info: HeadInfo) -> bool:
    return bool(_group_pids(info.pgid))


def _kill_group(pgid: int, grace_s: float = 5.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _group_pids(pgid):
            time.sleep(0.2)
        if not _group_pids(pgid):
            return



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
    _kill_group(info.pgid)
    head_file(run_dir).unlink(missing_ok=True)
    shutil.rmtree(info.temp_dir, ignore_errors=True)  # the short folder made by _temp_dir
    return alive


def _listen_inodes() -> dict[int, tuple[str, int]]:
    """socket inode -> (ip, port) of every listening TCP socket (/proc/net/tcp, tcp6)."""
    found = {}
    for name, width in (("tcp", 8), ("tcp6", 32)):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] != "0A":  # TCP_LISTEN
                continue
            hex_ip, hex_port = cols[1].split(":")
            raw = bytes.fromhex(hex_ip)
            # /proc prints the address as 32-bit host-order words
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            ip = socket.inet_ntop(socket.AF_INET if width == 8 else socket.AF_INET6, raw)
            found[int(cols[9])] = (ip, int(hex_port, 16))
    return found


def listening_sockets(pgid: int) -> list[tuple[int, str, int]]:
    """``(pid, ip, port)`` of every TCP socket listened on by a process of group ``pgid``."""
    inodes = _listen_inodes()
    out = set()
    for pid in _group_pids(pgid):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                out.add((pid, *inodes[int(target[8:-1])]))
    return sorted(out)


def init_ray(address: str | None = None, *, num_cpus: int | None = None, **kwargs) -> None:
    """Connect an entry point to Ray.

    ``address`` (or ``RAY_ADDRESS``) wins and is used as is, so real clusters work. Without one,
    start an in-process local instance bound to loopback with the dashboard off. No-op when
    Ray is already initialised in this process.
    """
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, **kwargs)
        return
    _force_loopback()
    _private_token()
    kwargs.setdefault("include_dashboard", False)
    kwargs.setdefault("configure_logging", False)
    ray.init(num_cpus=num_cpus, _node_ip_address=LOOPBACK, **kwargs)


def _private_token() -> None:
    """Token auth for a local instance without Ray writing ``~/.ray/auth_token``.

    Left alone when the user already chose (RAY_AUTH_MODE / RAY_AUTH_TOKEN / _PATH set).
    """
    if any(k in os.environ for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")):
        return
    folder = Path(tempfile.mkdtemp(prefix="affray-token-"))  # mode 0700
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    token = folder / "auth_token"
    _write_atomic(token, secrets.token_hex(32), mode=0o600)
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)})
    # `import ray` already parsed RAY_AUTH_MODE into its config: re-read it (as ray.init does
    # when it turns token auth on itself).
    from ray._raylet import Config

    Config.initialize("")


def _force_loopback() -> None:
    """Loopback for a local instance started by this process and the workers it spawns."""
    os.environ[LOOPBACK_ENV] = "0"
    # Ray reads the variable once, when ray_constants is imported: update the parsed value too.
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def main() -> None:
    """``python -m jobs.raylocal start|stop|env|status`` (the click group is jobs.raylocal_cli)."""
    from jobs.raylocal_cli import cli

    cli()


if __name__ == "__main__":
    main()
