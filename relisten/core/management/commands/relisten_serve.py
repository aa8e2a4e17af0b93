from __future__ import annotations

import signal
import subprocess
import sys
from argparse import ArgumentParser
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve Relisten over HTTP (development server in debug mode, gunicorn otherwise)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--with-worker", action="store_true",
                            help="also run the background worker, stopped together with the server")

    def handle(self, *args: Any, **options: Any) -> None:
        worker = None
        if options["with_worker"] and settings.TASKS_BACKEND != "immediate":
            worker = subprocess.Popen([sys.executable, "-m", "relisten.cli", "worker"])  # noqa: S603

        def stop(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        try:
            address = f"{options['host']}:{options['port']}"
            if settings.DEBUG:
                call_command("runserver", address, use_reloader=False)
            else:
                call_command("collectstatic", interactive=False, verbosity=0)
                subprocess.run(  # noqa: S603
                    [sys.executable, "-m", "gunicorn", "relisten.wsgi", "--bind", address,
                     "--workers", "3", "--access-logfile", "-"],
                    check=True,
                )
        except KeyboardInterrupt:
            pass
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=30)
