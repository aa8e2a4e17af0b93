"""`relisten audit verify|checkpoint|init-key`: check or anchor the tamper-evident audit trail."""

from __future__ import annotations

import json
import os
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from relisten.audit.keys import create_key_file
from relisten.audit.verify import export_checkpoint, verify_against_checkpoint, verify_chain
from relisten.lib.hashchain import ChainReport, CheckpointError

WRONG_KEY_HINT = (
    " If this is row 1, the audit key in use may not be the one the log was written with: "
    "check RELISTEN_AUDIT_KEY / RELISTEN_AUDIT_KEY_FILE before suspecting tampering."
)


class Command(BaseCommand):
    help = "Verify the tamper-evident audit trail, or export/verify a signed checkpoint."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="check every row's HMAC link")
        verify.add_argument("--checkpoint", type=Path,
                            help="also check the log still reaches this signed checkpoint")
        checkpoint = sub.add_parser("checkpoint", help="write a signed checkpoint of the tip")
        checkpoint.add_argument("--out", type=Path, required=True,
                                help="file to write; keep it away from the database server")
        sub.add_parser("init-key", help="create the audit key file (refuses to overwrite)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "init-key":
                self._init_key()
            elif options["action"] == "checkpoint":
                self._checkpoint(options["out"])
            else:
                self._verify(options.get("checkpoint"))
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from None

    def _init_key(self) -> None:
        path = Path(settings.AUDIT_KEY_FILE)
        if path.exists():
            raise CommandError(f"{path} already exists; refusing to replace an audit key")
        create_key_file(path)
        self.stdout.write(f"Created {path}. Back it up apart from the database: without it the "
                          "audit trail cannot be verified.")

    def _checkpoint(self, out: Path) -> None:
        try:
            document = export_checkpoint()
        except ValueError as error:
            raise CommandError(str(error)) from None
        # Write then rename, so an interrupted run never leaves half a checkpoint behind.
        partial = out.with_name(out.name + ".partial")
        try:
            partial.write_text(json.dumps(document, indent=2) + "\n")
            os.replace(partial, out)
        except OSError as error:
            raise CommandError(f"could not write the checkpoint: {error}") from None
        self.stdout.write(f"Checkpoint at row {document['seq']} written to {out}. "
                          "Copy it somewhere the database's administrators cannot change.")

    def _verify(self, checkpoint: Path | None) -> None:
        if checkpoint is not None:
            try:
                document = json.loads(checkpoint.read_text())
                report = verify_against_checkpoint(document)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, CheckpointError) as error:
                raise CommandError(f"checkpoint unusable: {error}") from None
        else:
            report = verify_chain()
        if not report.ok:
            raise CommandError(self._broken_message(report))
        anchored = f" and reach checkpoint {checkpoint}" if checkpoint is not None else ""
        self.stdout.write(f"OK: {report.rows_checked} rows verified{anchored}; "
                          f"tip is row {report.last_seq}.")

    @staticmethod
    def _broken_message(report: ChainReport) -> str:
        message = (f"AUDIT TRAIL BROKEN at row {report.first_bad_seq}: {report.problem} "
                   f"({report.rows_checked} rows verified before it).")
        return message + (WRONG_KEY_HINT if report.first_bad_seq == 1 else "")
