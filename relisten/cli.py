"""`relisten`: the one command-line entry point.

`relisten serve`, `relisten worker`, `relisten audit verify`, `relisten demo` and so on map to
Django management commands; anything else is passed to Django unchanged (`relisten migrate`).
"""

from __future__ import annotations

import os
import sys

# Friendly names for the commands operators type most; the value is the management command.
ALIASES = {
    "serve": "relisten_serve",
    "worker": "relisten_worker",
    "demo": "load_demo",
    "audit": "audit",
    "keys": "keys",
}


def manage(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "relisten.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(argv)
    except ImproperlyConfigured as error:
        # A configuration mistake is the operator's to fix: say what, without a traceback.
        print(f"relisten: configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0] in {"-h", "--help", "help"}:
        print("usage: relisten COMMAND [options]\n\ncommands:\n"
              "  serve [--with-worker]   run the web server (and the background worker)\n"
              "  worker                  run the background job worker\n"
              "  demo                    load the demo clinic and print its sign-ins\n"
              "  audit verify|checkpoint|init-key   check or anchor the audit trail\n"
              "  keys init|rotate|rewrap|status      manage the keys protecting recordings\n"
              "  vault scrub|gc|recover|retention    check recordings, clean up, apply retention\n"
              "  transcribe FILE_OR_DIR... [--speakers N] [--stereo] [--format F] [--out DIR]\n"
              "                          transcribe files locally (no server or database)\n"
              "  migrate, createsuperuser, check, ...   any Django management command")
        return
    if args[0] in {"worker", "transcribe"}:
        # The speaker encoder's small matrix products run slower, and erratically under load,
        # with several BLAS threads (bench/asr.py): one thread, before numpy is imported.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if args[0] == "transcribe":
        # Researchers transcribe files on a laptop: no Django, database or secret key needed.
        from relisten.lib.asr.cli import main as transcribe

        raise SystemExit(transcribe(args[1:]))
    command = ALIASES.get(args[0], args[0])
    manage(["relisten", command, *args[1:]])


if __name__ == "__main__":
    main()
