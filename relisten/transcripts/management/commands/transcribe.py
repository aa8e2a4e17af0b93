"""`relisten transcribe FILE_OR_DIR...`: the researcher CLI (see relisten.lib.asr.cli).

Standalone by design: no system checks, no migrations check, no database access at all, so
it runs on a laptop with nothing but the package installed.
"""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from relisten.lib.asr import cli
from relisten.transcripts.asr_config import asr_settings_from_django


class Command(BaseCommand):
    help = "Transcribe recordings on this computer (no server or database needed)."
    requires_system_checks: list[str] = []  # the checks would look at the database
    requires_migrations_checks = False

    def add_arguments(self, parser: ArgumentParser) -> None:
        cli.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        # The real stderr, not Django's wrapper: the progress bar redraws a line in place.
        status = cli.run(cli.options_from(options), asr_settings_from_django(), sys.stderr)
        if status:
            raise SystemExit(status)
