from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run the background job worker for the configured tasks backend."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--burst", action="store_true",
                            help="process what is queued, then exit")

    def handle(self, *args: Any, **options: Any) -> None:
        backend = settings.TASKS_BACKEND
        if backend != "immediate":
            # Runs whose worker was killed mid-job go back on the queue before work starts.
            from relisten.transcripts.pipeline import requeue_stale_runs

            requeue_stale_runs()
        if not options["burst"] and backend != "immediate":
            from relisten.core.periodic import start_scheduler

            start_scheduler()
        if backend == "database":
            extra = ["--batch"] if options["burst"] else []
            call_command("db_worker", *extra)
        elif backend == "rq":
            extra = ["--burst"] if options["burst"] else []
            call_command("rqworker", "default", *extra)
        else:
            raise CommandError(
                "RELISTEN_TASKS_BACKEND=immediate runs jobs inline; no worker needed"
            )
