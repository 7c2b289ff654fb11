"""Ray on this machine, the project's way: `init_ray` / `ray_session` for every entry point
(connect.py), a loopback-only local head (head.py, ``python -m jobs.raylocal``), the loopback
environment (loopback.py) and /proc views of a head's processes and sockets (procs.py).

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

from jobs.raylocal.connect import init_ray, ray_session
from jobs.raylocal.head import (
    HeadInfo,
    head_alive,
    head_file,
    read_head,
    start_head,
    stop_head,
    sweep_orphan_heads,
)
from jobs.raylocal.loopback import LOOPBACK, LOOPBACK_ENV, LOOPBACK_HOSTS, is_loopback_address
from jobs.raylocal.procs import listening_sockets, proc_pids

__all__ = [
    "LOOPBACK", "LOOPBACK_ENV", "LOOPBACK_HOSTS", "HeadInfo", "head_alive", "head_file",
    "init_ray", "is_loopback_address", "listening_sockets", "proc_pids", "ray_session",
    "read_head", "start_head", "stop_head", "sweep_orphan_heads",
]
