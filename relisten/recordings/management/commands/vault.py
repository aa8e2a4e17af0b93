"""`relisten vault gc|recover|scrub|retention`: housekeeping of the encrypted media vault.

Each subcommand is one small method; add one by adding a subparser and a `_<name>` method.
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from relisten.recordings import actions, erasure, scrub
from relisten.recordings.models import Recording, State


class Command(BaseCommand):
    help = "Housekeeping of the encrypted media vault (uploads, recovery after a crash)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("gc", help="remove expired or abandoned uploads and failed leftovers")
        sub.add_parser("recover", help="finish every upload that arrived but was not checked "
                                       "(run after a crash)")
        sub.add_parser("scrub", help="decrypt every ready recording end to end and name any "
                                     "that are damaged (exit code 1 if so)")
        retention = sub.add_parser("retention", help="erase recordings the clinics' retention "
                                                     "rules say are due")
        retention.add_argument("--dry-run", action="store_true",
                               help="only list what would be erased")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            getattr(self, f"_{action.replace('-', '_')}")(**options)
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from None

    def _gc(self, **options: Any) -> None:
        done = actions.collect_expired_uploads()
        self.stdout.write(
            f"Removed {done.expired} expired upload(s), {done.orphan_files} leftover staging "
            f"file set(s) and {done.orphan_objects} unused object(s)."
            + (f" {done.busy} upload(s) were busy and were left for the next run."
               if done.busy else "")
        )

    def _recover(self, **options: Any) -> None:
        results = actions.recover_received()
        ready = sum(1 for recording in results if recording.state == State.READY)
        failed = sum(1 for recording in results if recording.state == State.FAILED)
        left = Recording.objects.filter(state=State.RECEIVED).count()
        self.stdout.write(f"Recovered {len(results)} recording(s): {ready} ready, "
                          f"{failed} could not be used, {left} still waiting.")
        if left:
            raise CommandError(f"{left} recording(s) could not be finished; see the log above.")

    def _scrub(self, **options: Any) -> None:
        report = scrub.scrub_all()
        self.stdout.write(f"{report.checked} recording(s) checked, "
                          f"{len(report.damaged)} damaged.")
        if report.damaged:
            lines = "\n".join(f"  {public_id}: {problem}" for public_id, problem in report.damaged)
            raise CommandError("These recordings are damaged and cannot be played safely "
                               "(each is in the audit trail as vault.integrity_failure):\n"
                               f"{lines}\nRestore their objects from a backup of the media "
                               "storage, then scrub again.")

    def _retention(self, **options: Any) -> None:
        dry_run = bool(options["dry_run"])
        items = erasure.run_retention(dry_run=dry_run)
        for item in items:
            self.stdout.write(item.line())
        verb = "would be erased" if dry_run else "erased"
        self.stdout.write(f"{len(items)} recording(s) {verb}.")
