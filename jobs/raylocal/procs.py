"""The processes and listening sockets of a process group, read from /proc (Linux)."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

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


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot, /proc stat field 22); None when
    there is no such live process (gone or a zombie). (pid, start_time) names one process
    for good: a pid reused later has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def cmdline(pid: int) -> str:
    """The command line of ``pid``, arguments joined by spaces ("" when it cannot be read)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes of group ``pgid`` (Linux)."""
    return proc_pids("pgrp", pgid)


def kill_group(pgid: int, grace_s: float = 5.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and group_pids(pgid):
            time.sleep(0.2)
        if not group_pids(pgid):
            return


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
    for pid in group_pids(pgid):
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
