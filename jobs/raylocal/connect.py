"""The one way every Ray entry point connects to Ray: `init_ray` and the `ray_session` context.

An address given by the user (``address=`` / ``--address``, else ``RAY_ADDRESS``) always wins and
is used as is, so real clusters work; a loopback address also keeps this process's own Ray
services on loopback. Without one, a fresh in-process instance is started (never attached to
someone else's) bound to 127.0.0.1, with the dashboard off and a private auth token.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from featurestore.atomic import atomic_write_text
from jobs.raylocal.head import sweep_orphan_heads, write_owner
from jobs.raylocal.loopback import LOOPBACK, force_loopback, is_loopback_address

log = logging.getLogger(__name__)

_TOKEN_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def init_ray(address: str | None = None, *, num_cpus: int | None = None, **kwargs: Any) -> bool:
    """Connect this process to Ray; returns True when this call did (False: it already was).

    ``kwargs`` go to ``ray.init`` (e.g. ``log_to_driver=False``); ``num_cpus`` applies to a local
    instance only.
    """
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        if is_loopback_address(address):
            force_loopback()
        log.info("connecting to Ray at %s", address)
        ray.init(address=address, **kwargs)
        return True
    force_loopback()
    _private_token()
    kwargs.setdefault("include_dashboard", False)
    kwargs.setdefault("configure_logging", False)
    ray.init(address="local", num_cpus=num_cpus, _node_ip_address=LOOPBACK, **kwargs)
    return True


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None,
                **kwargs: Any) -> Iterator[Any]:
    """``init_ray`` for a block: yields the ``ray`` module; shuts Ray down on exit only if this
    block connected it (a caller's existing session is left alone)."""
    import ray

    started = init_ray(address, num_cpus=num_cpus, **kwargs)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _private_token() -> None:
    """Token auth for a local instance without Ray writing ``~/.ray/auth_token``.

    Left alone when the user already chose (RAY_AUTH_MODE / RAY_AUTH_TOKEN / _PATH set).
    """
    if any(k in os.environ for k in _TOKEN_VARS):
        return
    sweep_orphan_heads()  # token folders (and heads) that killed processes left in /tmp
    folder = Path(tempfile.mkdtemp(prefix="affray-token-", dir="/tmp"))  # mode 0700
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    write_owner(folder, os.getpid())  # removed by a later sweep if this process is killed
    token = folder / "auth_token"
    atomic_write_text(token, secrets.token_hex(32), mode=0o600)
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)})
    # `import ray` already parsed RAY_AUTH_MODE into its config: re-read it (as ray.init does
    # when it turns token auth on itself).
    from ray._raylet import Config

    Config.initialize("")
