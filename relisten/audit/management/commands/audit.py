from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from relisten.audit.keys import create_key_file
from relisten.audit.verify import export_checkpoint, verify_against_checkpoint, verify_chain
from relisten.lib.hashchain import CheckpointError


class Command(BaseCommand):
    help = "Verify the tamper-evident audit trail, or export/verify a signed checkpoint."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="check every row's HMAC link")
        verify.add_argument("--checkpoint", type=Path,
                            help="also check the log still reaches this signed checkpoint")
        checkpoint = sub.add_parser("checkpoint", help="write a signed checkpoint of the tip")
        checkpoint.add_argument("--out", type=Path, required=True)
        sub.add_parser("init-key", help="create the audit key file (refuses to overwrite)")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "init-key":
            path = Path(settings.AUDIT_KEY_FILE)
            if path.exists():
                raise CommandError(f"{path} already exists; refusing to replace an audit key")
            create_key_file(path)
            self.stdout.write(f"Created {path}. Back it up apart from the database.")
            return
        if action == "checkpoint":
            try:
                document = export_checkpoint()
            except ValueError as error:
                raise CommandError(str(error)) from None
            options["out"].write_text(json.dumps(document, indent=2) + "\n")
            self.stdout.write(f"Checkpoint at row {document['seq']} written to {options['out']}")
            return
        if options.get("checkpoint"):
            try:
                document = json.loads(options["checkpoint"].read_text())
                report = verify_against_checkpoint(document)
            except (OSError, json.JSONDecodeError, CheckpointError) as error:
                raise CommandError(f"checkpoint unusable: {error}") from None
        else:
            report = verify_chain()
        if not report.ok:
            raise CommandError(
                f"AUDIT TRAIL BROKEN at row {report.first_bad_seq}: {report.problem} "
                f"({report.rows_checked} rows verified before it)"
            )
        self.stdout.write(f"OK: {report.rows_checked} rows verified; tip is row {report.last_seq}.")
