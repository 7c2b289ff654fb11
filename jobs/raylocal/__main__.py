"""``python -m jobs.raylocal start|stop|env|status``."""

from jobs.raylocal.cli import cli

if __name__ == "__main__":
    cli()
