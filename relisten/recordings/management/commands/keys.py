"""`relisten keys init|rotate|rewrap|status`: the media vault's key-encryption keys."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from relisten.recordings import rotation, vault
from relisten.recordings.rotation import KeyringError, RewrapReport


class Command(BaseCommand):
    help = "Create, rotate or inspect the keys that protect recordings' data keys."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("init", help="create the keyring file (refuses to overwrite)")
        rotate = sub.add_parser("rotate", help="add a new active key and re-wrap every data key")
        rotate.add_argument("--retire-old", action="store_true",
                            help="afterwards, remove old versions no recording uses any more")
        sub.add_parser("rewrap", help="finish a rotation that was interrupted")
        sub.add_parser("status", help="show key versions and how many recordings use each")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            action = options["action"]
            if action == "init":
                path = rotation.init_keyring()
                self.stdout.write(f"Created {path}. Back it up apart from the database and the "
                                  "media storage: without it no recording can be played.")
            elif action == "rotate":
                _, report = rotation.rotate()
                self._report(report)
                if options["retire_old"]:
                    self._retire(report)
                else:
                    self.stdout.write("Old key versions are kept; remove unused ones with "
                                      "`relisten keys rotate --retire-old` when backups allow.")
            elif action == "rewrap":
                self._report(rotation.finish_rewrap())
            else:
                self._status()
        except (KeyringError, ImproperlyConfigured) as error:
            raise CommandError(str(error)) from None

    def _report(self, report: RewrapReport) -> None:
        self.stdout.write(f"Active key version: {report.active}. "
                          f"Re-wrapped {report.rewrapped} recording key(s); media unchanged.")
        if report.failed:
            raise CommandError(
                f"{len(report.failed)} recording key(s) could not be opened and were left as "
                f"they were (written to the audit trail): {', '.join(report.failed)}"
            )

    def _retire(self, report: RewrapReport) -> None:
        retired = rotation.retire_unused()
        if retired:
            self.stdout.write("Removed key version(s) " + ", ".join(map(str, retired)) + ". "
                              "Backups of the database older than this rotation can no longer "
                              "be played with this keyring.")
        else:
            self.stdout.write("No old key version could be removed: recordings still use them.")

    def _status(self) -> None:
        ring = vault.keyring()
        used = rotation.usage_by_version()
        source = "RELISTEN_KEK" if settings.KEK_TEXT else str(rotation.keyring_path())
        self.stdout.write(f"Keyring: {source}")
        for version in sorted(set(ring.keys) | set(used)):
            marks = []
            if version == ring.active:
                marks.append("active")
            if version not in ring.keys:
                marks.append("MISSING from the keyring")
            suffix = f" ({', '.join(marks)})" if marks else ""
            self.stdout.write(f"  version {version}{suffix}: {used.get(version, 0)} recording(s)")
        missing = sorted(set(used) - set(ring.keys))
        if missing:
            raise CommandError("Some recordings use key versions that are not in the keyring: "
                               f"{', '.join(map(str, missing))}. They cannot be played.")
