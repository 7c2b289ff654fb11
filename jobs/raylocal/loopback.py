"""Keeping Ray on 127.0.0.1: the addresses that count as loopback and the environment that
makes Ray bind its services there (see shared/PLATFORM.md)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::ffff:127.0.0.1", "::1", "localhost"})


def is_loopback_address(address: str) -> bool:
    """Whether a Ray address (``host:port``, ``ray://host:port``, ``http://host:port``) is local."""
    host = urlsplit(address if "://" in address else f"//{address}").hostname
    return host in LOOPBACK_HOSTS


def local_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment for processes of a local head: loopback binding, this interpreter first
    on PATH (jobs run ``python ...`` through the raylet's PATH), plus ``extra``."""
    env = dict(os.environ)
    env[LOOPBACK_ENV] = "0"
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return env


def force_loopback() -> None:
    """Loopback for Ray services started by this process and the workers it spawns."""
    os.environ[LOOPBACK_ENV] = "0"
    # Ray reads the variable once, when ray_constants is imported: update the parsed value too.
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False
