"""The `python -m jobs.raylocal` CLI: start, stop, env and status of the local Ray head."""

from __future__ import annotations

import logging
import os
import shlex

import click

from featurestore.clierrors import ErrorGroup
from jobs.raylocal.head import head_alive, read_head, start_head, stop_head
from jobs.raylocal.loopback import LOOPBACK_HOSTS
from jobs.raylocal.procs import listening_sockets


@click.group(cls=ErrorGroup)
def cli() -> None:
    """Manage the project's loopback-only local Ray head."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


_run_dir_opt = click.option(
    "--run-dir", type=click.Path(file_okay=False), default="runs/ray", show_default=True
)


@cli.command()
@_run_dir_opt
@click.option("--num-cpus", type=int, default=None)
@click.option("--dashboard-port", type=int, default=8265, show_default=True)
def start(run_dir: str, num_cpus: int | None, dashboard_port: int) -> None:
    """Start the head and print how to submit jobs to it.

    The head belongs to the process that ran this command (a shell, a pipeline): once that is
    gone, the next head started on this machine stops it."""
    address = start_head(run_dir, num_cpus=num_cpus, dashboard_port=dashboard_port,
                         owner_pid=os.getppid())
    click.echo(f"Ray head at {address}; to submit jobs:")
    click.echo(f'  eval "$(python -m jobs.raylocal env --run-dir {shlex.quote(run_dir)})"')
    click.echo("  ray job submit --working-dir . -- python jobs/extract.py ...")


@cli.command()
@_run_dir_opt
def stop(run_dir: str) -> None:
    """Stop the head of this run folder (only its own processes)."""
    click.echo("stopped" if stop_head(run_dir) else "no running head")


@cli.command()
@_run_dir_opt
def env(run_dir: str) -> None:
    """Print `export` lines for `ray job submit` against this head."""
    for key, value in read_head(run_dir).client_env().items():
        click.echo(f"export {key}={shlex.quote(value)}")


@cli.command()
@_run_dir_opt
def status(run_dir: str) -> None:
    """Whether the head runs, and the sockets it listens on (all must be loopback)."""
    info = read_head(run_dir)
    if not head_alive(info):
        click.echo(f"head of {run_dir} is not running")
        raise SystemExit(1)
    click.echo(f"address {info.address}  dashboard {info.dashboard_url}")
    sockets = listening_sockets(info.pgid)
    for pid, ip, port in sockets:
        click.echo(f"  pid {pid:>7}  {ip}:{port}")
    exposed = [s for s in sockets if s[1] not in LOOPBACK_HOSTS]
    click.echo(f"{len(sockets)} listening sockets, {len(exposed)} not on loopback")
    if exposed:
        raise SystemExit(2)
