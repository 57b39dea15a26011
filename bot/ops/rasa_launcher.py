"""Start ``rasa`` in this process with the API token from the environment, so the token never sits in argv.

Rasa 3.6 reads its HTTP API token only from ``--auth-token`` (rasa/cli/arguments/run.py), and a process's
command line is readable by every local user (``ps``, ``/proc/<pid>/cmdline``). ``python -m bot.ops.rasa_launcher
run ...`` takes the token from ``RASA_AUTH_TOKEN``, adds ``--auth-token`` to ``sys.argv`` inside this process
only (the command line the kernel shows stays the one without it) and runs Rasa's own command-line entry point.

It also sets Sanic's ``REQUEST_MAX_SIZE`` (``SANIC_REQUEST_MAX_SIZE``, default :data:`REQUEST_MAX_BYTES`): Sanic
refuses a declared length over it with 413 before reading the body, and stops reading a chunked body there,
instead of buffering up to its default 100 MB before the channels' own 64 KiB checks. And it installs
``bot.log_masking`` as Rasa's log anonymiser, so Rasa's own log lines are masked.
"""
from __future__ import annotations

import os
import sys

REQUEST_MAX_BYTES = 128 * 1024
"""Largest request body the Rasa server reads: twice the REST and WeChat channels' own 64 KiB limit
(bot.channels.rest.MAX_BODY_BYTES, bot.channels.wechat.push.MAX_BODY_BYTES), so that a body just over theirs
still gets their JSON 413 with the reason, and anything larger Sanic's 413 before it is read."""


def rasa_argv(argv: list[str], token: str) -> list[str]:
    """``rasa`` + ``argv``, with ``--auth-token <token>`` when ``token`` is set and ``argv`` is a ``run``."""
    args = ["rasa", *argv]
    if token and argv[:1] == ["run"]:
        args += ["--auth-token", token]
    return args


def main() -> None:
    """Run Rasa's CLI with ``sys.argv[1:]`` and the token of ``RASA_AUTH_TOKEN``."""
    os.environ.setdefault("SANIC_REQUEST_MAX_SIZE", str(REQUEST_MAX_BYTES))
    sys.argv = rasa_argv(sys.argv[1:], os.environ.get("RASA_AUTH_TOKEN", ""))
    from rasa.__main__ import main as rasa_main

    from bot.log_masking import register

    register()  # personal data masked in Rasa's own log lines
    rasa_main()


if __name__ == "__main__":
    main()
