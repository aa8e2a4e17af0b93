"""The audit trail: append-only in the database, tamper-evident by HMAC chain and checkpoint.

Tampering tests drop the append-only triggers from migration audit/0002 first, as an attacker
with SQL access could; each test runs in a transaction, so the triggers come back afterwards
(and are recreated explicitly too, in case a backend does not roll DDL back).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client as HttpClient
from pytest_django.fixtures import Settings as SettingsWrapper

from relisten.accounts.actions import create_clinic
from relisten.accounts.models import User
from relisten.audit.keys import audit_key
from relisten.audit.labels import EVENT_LABELS, TARGET_LABELS
from relisten.audit.log import record_event, record_event_now
from relisten.audit.models import AuditEvent, AuditHead
from relisten.audit.triggers import drop_statements, triggers_lifted
from relisten.audit.verify import verify_chain
from relisten.consent.actions import revoke
from relisten.consent.models import Method, Purpose
from relisten.core.personas import Cast


@pytest.fixture(autouse=True)
def fresh_audit_key() -> Iterator[None]:
    """audit_key() is cached per process; tests that change the key must not leak it."""
    audit_key.cache_clear()
    yield
    audit_key.cache_clear()


@contextmanager
def attacker_sql() -> Iterator[Any]:
    """A cursor with the append-only triggers dropped, as someone with SQL access could."""
    with triggers_lifted(connection) as cursor:
        yield cursor


def tip() -> int:
    return AuditHead.objects.get(pk=1).seq


def verify_message() -> str:
    """Run `audit verify` and return the error it raises (the test expects it to fail)."""
    with pytest.raises(CommandError) as failure:
        call_command("audit", "verify")
    return str(failure.value)


def verify_ok(*args: str) -> str:
    out: list[str] = []

    class Sink:
        def write(self, text: str) -> None:
            out.append(text)

        def flush(self) -> None:
            pass

    call_command("audit", "verify", *args, stdout=Sink())
    return "".join(out)


# ---- append-only in the database ------------------------------------------------------------

def test_triggers_really_block_update_and_delete(cast: Cast) -> None:
    seq = tip()
    with connection.cursor() as cursor:
        for sql in ("UPDATE audit_auditevent SET event_type = 'x' WHERE seq = %s",
                    "DELETE FROM audit_auditevent WHERE seq = %s"):
            with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
                cursor.execute(sql, [seq])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(seq=seq).update(actor_label="someone else")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(seq=seq).delete()
    assert AuditEvent.objects.get(seq=seq).event_type != "x"
    assert verify_chain().ok


def test_truncate_is_blocked_too(cast: Cast) -> None:
    statement = ("TRUNCATE audit_auditevent" if connection.vendor == "postgresql"
                 else "DELETE FROM audit_auditevent")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), \
            connection.cursor() as cursor:
        cursor.execute(statement)
    assert AuditEvent.objects.count() == tip()


@pytest.mark.django_db(transaction=True)
def test_transactional_tests_can_still_flush_the_test_database() -> None:
    """Teardown of this test flushes every table; the audit app's flush lifts the triggers."""
    create_clinic(actor=None, name="Flushed afterwards")
    assert AuditEvent.objects.count() == 1


def test_model_refuses_save_and_delete_of_an_existing_row(cast: Cast) -> None:
    event = AuditEvent.objects.get(seq=tip())
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()


def test_record_event_needs_the_callers_transaction(transactional_db: None) -> None:
    with pytest.raises(RuntimeError, match="atomic"):
        record_event(actor=None, event_type="test.outside")
    assert not AuditEvent.objects.exists()


def test_record_event_refuses_clinical_values(cast: Cast) -> None:
    before = tip()
    with pytest.raises(ValueError, match="clinical"):
        record_event_now(actor=cast.therapist_a, event_type="client.updated",
                         client=cast.client_a, changes={"given_name": {"new": "X"}})
    with pytest.raises(ValueError, match="clinical"):
        record_event_now(actor=cast.therapist_a, event_type="client.updated",
                         changes={"fields": {"date_of_birth": "2000-01-01"}})
    assert tip() == before


# ---- the chain and verify -------------------------------------------------------------------

def test_intact_log_verifies(cast: Cast) -> None:
    assert f"OK: {tip()} rows verified" in verify_ok()


def test_altered_changes_are_named(cast: Cast) -> None:
    target = AuditEvent.objects.filter(event_type="consent.granted").order_by("seq").first()
    assert target is not None
    with attacker_sql() as cursor:
        cursor.execute("UPDATE audit_auditevent SET changes = %s WHERE seq = %s",
                       [json.dumps({**target.changes, "granted": False}), target.seq])
    assert AuditEvent.objects.get(seq=target.seq).changes["granted"] is False  # really changed
    message = verify_message()
    assert f"row {target.seq}:" in message and "altered" in message


def test_altered_actor_is_named(cast: Cast) -> None:
    seq = tip() // 2
    with attacker_sql() as cursor:
        cursor.execute("UPDATE audit_auditevent SET actor_label = 'nobody' WHERE seq = %s", [seq])
    assert f"row {seq}:" in verify_message()


def test_deleted_middle_row_is_named(cast: Cast) -> None:
    seq = tip() // 2
    with attacker_sql() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE seq = %s", [seq])
    message = verify_message()
    assert f"row {seq}:" in message and "missing" in message


def test_deleted_tail_is_caught_by_the_head_row(cast: Cast) -> None:
    last = tip()
    with attacker_sql() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE seq > %s", [last - 3])
    message = verify_message()
    assert f"row {last - 2}:" in message
    assert f"ends at row {last - 3}" in message


def test_deleted_tail_and_head_row_is_caught(cast: Cast) -> None:
    last = tip()
    with attacker_sql() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE seq > %s", [last - 3])
        cursor.execute("DELETE FROM audit_audithead")
    assert "tip" in verify_message()


def _cut_tail_and_rewrite_head(keep: int) -> None:
    kept = AuditEvent.objects.get(seq=keep)
    with attacker_sql() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE seq > %s", [keep])
        cursor.execute("UPDATE audit_audithead SET seq = %s, mac = %s WHERE id = 1",
                       [kept.seq, kept.mac])


def test_only_a_checkpoint_catches_a_cut_tail_with_a_rewritten_head(
    cast: Cast, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "checkpoint.json"
    call_command("audit", "checkpoint", "--out", str(checkpoint))
    document = json.loads(checkpoint.read_text())
    assert document["seq"] == tip()
    assert f"reach checkpoint {checkpoint}" in verify_ok("--checkpoint", str(checkpoint))

    last = tip()
    _cut_tail_and_rewrite_head(last - 3)

    assert "OK:" in verify_ok()  # the plain check cannot see it...
    with pytest.raises(CommandError) as failure:  # ...the checkpoint can
        call_command("audit", "verify", "--checkpoint", str(checkpoint))
    message = str(failure.value)
    assert f"row {last - 2}:" in message and "deleted from the end" in message


def test_checkpoint_catches_a_rewritten_checkpointed_row(cast: Cast, tmp_path: Path) -> None:
    """Chain intact up to the checkpoint's seq but with a different row there: a rebuilt log."""
    checkpoint = tmp_path / "checkpoint.json"
    call_command("audit", "checkpoint", "--out", str(checkpoint))
    document = json.loads(checkpoint.read_text())
    with attacker_sql() as cursor:
        cursor.execute("UPDATE audit_auditevent SET mac = %s WHERE seq = %s",
                       ["f" * 64, document["seq"]])
    with pytest.raises(CommandError, match=f"row {document['seq']}"):
        call_command("audit", "verify", "--checkpoint", str(checkpoint))


def test_forged_checkpoint_is_rejected(cast: Cast, tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint.json"
    call_command("audit", "checkpoint", "--out", str(checkpoint))
    document = json.loads(checkpoint.read_text())
    # An attacker who cut the tail would want a checkpoint vouching for the shorter log.
    document["seq"] = document["seq"] - 3
    document["mac"] = AuditEvent.objects.get(seq=document["seq"]).mac
    checkpoint.write_text(json.dumps(document))
    with pytest.raises(CommandError, match="checkpoint unusable: .*signature"):
        call_command("audit", "verify", "--checkpoint", str(checkpoint))


def test_unreadable_checkpoint_is_reported_kindly(cast: Cast, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(CommandError, match="checkpoint unusable"):
        call_command("audit", "verify", "--checkpoint", str(missing))
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    with pytest.raises(CommandError, match="checkpoint unusable"):
        call_command("audit", "verify", "--checkpoint", str(garbage))


def test_checkpoint_to_an_unwritable_place_is_reported_kindly(cast: Cast, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="could not write the checkpoint"):
        call_command("audit", "checkpoint", "--out", str(tmp_path / "no-such-dir" / "c.json"))


def test_checkpoint_of_a_broken_chain_is_refused(cast: Cast, tmp_path: Path) -> None:
    with attacker_sql() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE seq = 2")
    out = tmp_path / "checkpoint.json"
    with pytest.raises(CommandError, match="refusing to checkpoint a broken chain"):
        call_command("audit", "checkpoint", "--out", str(out))
    assert not out.exists()


def test_wrong_audit_key_fails_verification(
    cast: Cast, settings: SettingsWrapper, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "checkpoint.json"
    call_command("audit", "checkpoint", "--out", str(checkpoint))
    settings.AUDIT_KEY_HEX = "b2" * 32
    audit_key.cache_clear()
    message = verify_message()
    assert "row 1:" in message and "audit key" in message
    with pytest.raises(CommandError, match="signature does not match this audit key"):
        call_command("audit", "verify", "--checkpoint", str(checkpoint))


def test_appends_continue_the_chain_after_a_rolled_back_one(cast: Cast) -> None:
    before = tip()
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        record_event(actor=cast.admin, event_type="test.rolled_back")
        1 / 0  # noqa: B018
    assert tip() == before
    record_event_now(actor=cast.admin, event_type="test.kept")
    assert tip() == before + 1
    assert verify_chain().ok


# ---- keys -----------------------------------------------------------------------------------

def test_key_is_required_outside_debug(settings: SettingsWrapper, tmp_path: Path) -> None:
    settings.AUDIT_KEY_HEX = None
    settings.AUDIT_KEY_FILE = tmp_path / "keys" / "audit.key"
    settings.DEBUG = False
    with pytest.raises(ImproperlyConfigured, match="init-key"):
        audit_key()
    assert not (tmp_path / "keys" / "audit.key").exists()


@pytest.mark.parametrize("value", ["not-hex", "ab" * 16])
def test_bad_key_values_are_refused(settings: SettingsWrapper, value: str) -> None:
    settings.AUDIT_KEY_HEX = value
    with pytest.raises(ImproperlyConfigured, match="RELISTEN_AUDIT_KEY"):
        audit_key()


def test_init_key_creates_a_private_key_file_once(
    settings: SettingsWrapper, tmp_path: Path
) -> None:
    path = tmp_path / "keys" / "audit.key"
    settings.AUDIT_KEY_HEX = None
    settings.AUDIT_KEY_FILE = path
    call_command("audit", "init-key", stdout=open(os.devnull, "w"))  # noqa: SIM115
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(bytes.fromhex(path.read_text().strip())) == 32
    assert audit_key() == bytes.fromhex(path.read_text().strip())
    with pytest.raises(CommandError, match="refusing to replace"):
        call_command("audit", "init-key")


# ---- reads are audited, and clients can see them ---------------------------------------------

def test_reading_a_client_page_writes_record_viewed(
    cast: Cast, signed_in: Callable[[User], HttpClient]
) -> None:
    before = tip()
    response = signed_in(cast.therapist_a).get(f"/clients/{cast.client_a.public_id}/")
    assert response.status_code == 200
    viewed = AuditEvent.objects.filter(seq__gt=before, event_type="record.viewed")
    assert [(e.client_id, e.actor_id, e.actor_role) for e in viewed] == [
        (cast.client_a.public_id, cast.therapist_a.public_id, "therapist")
    ]
    assert verify_chain().ok


def test_refused_read_is_audited_without_a_view(
    cast: Cast, signed_in: Callable[[User], HttpClient]
) -> None:
    before = tip()
    response = signed_in(cast.therapist_b).get(f"/clients/{cast.client_a.public_id}/")
    assert response.status_code == 404
    types = list(AuditEvent.objects.filter(seq__gt=before).values_list("event_type", flat=True))
    assert types == ["authz.denied"]


def test_client_sees_who_accessed_their_record(
    cast: Cast, signed_in: Callable[[User], HttpClient]
) -> None:
    signed_in(cast.supervisor).get(f"/clients/{cast.client_a.public_id}/")
    response = signed_in(cast.client_user_a).get(f"/me/{cast.client_a.public_id}/access/")
    assert response.status_code == 200
    page = response.content.decode()
    assert cast.supervisor.label() in page and "supervisor" in page
    assert "Viewed" in page
    # Colin's therapist never touched Cora's record, so he is not in her log.
    assert cast.therapist_b.label() not in page


def test_a_clients_own_actions_are_labelled_client_not_by_username(cast: Cast) -> None:
    revoke(actor=cast.client_user_a, client=cast.client_a, purpose=Purpose.AUDIO_RECORDING,
           method=Method.CLIENT_ONLINE)
    event = AuditEvent.objects.get(seq=tip())
    assert event.actor_id == cast.client_user_a.public_id
    assert event.actor_label == "client"


def test_every_event_the_demo_writes_has_plain_words(
    cast: Cast, signed_in: Callable[[User], HttpClient]
) -> None:
    signed_in(cast.therapist_a).get(f"/clients/{cast.client_a.public_id}/")
    types = set(AuditEvent.objects.values_list("event_type", flat=True))
    targets = set(AuditEvent.objects.values_list("target_type", flat=True)) - {""}
    assert types <= set(EVENT_LABELS)
    assert targets <= set(TARGET_LABELS)


# ---- the real `relisten` console entry point --------------------------------------------------

def _relisten_binary() -> str:
    candidate = Path(sys.executable).parent / "relisten"
    if not candidate.exists():
        pytest.skip("the relisten console script is not installed in this environment")
    return str(candidate)


def test_relisten_cli_checkpoint_catches_truncation(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RELISTEN_") and k != "DJANGO_SETTINGS_MODULE"}
    env.update(RELISTEN_DATA_DIR=str(tmp_path), RELISTEN_SECRET_KEY="cli-test-" + "s" * 50,
               RELISTEN_AUDIT_KEY="c3" * 32, DJANGO_SETTINGS_MODULE="relisten.settings")
    binary = _relisten_binary()

    def relisten(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([binary, *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, check=False)

    assert relisten("migrate", "--noinput").returncode == 0
    made = relisten("shell", "-c", "from relisten.accounts.actions import create_clinic\n"
                    "for n in range(5): create_clinic(actor=None, name=f'Clinic {n}')")
    assert made.returncode == 0, made.stderr
    checkpoint = tmp_path / "checkpoint.json"
    made = relisten("audit", "checkpoint", "--out", str(checkpoint))
    assert made.returncode == 0, made.stderr
    ok = relisten("audit", "verify", "--checkpoint", str(checkpoint))
    assert ok.returncode == 0 and "OK: 5 rows verified" in ok.stdout
    # Outside a test run, `flush` may not wipe the audit trail: it fails and changes nothing.
    assert relisten("flush", "--noinput").returncode != 0
    assert "OK: 5 rows verified" in relisten("audit", "verify").stdout

    database = sqlite3.connect(tmp_path / "relisten.sqlite3")
    with database:
        for statement in drop_statements("sqlite"):
            database.execute(statement)
        database.execute("DELETE FROM audit_auditevent WHERE seq > 3")
        database.execute("UPDATE audit_audithead SET seq = 3, mac = "
                         "(SELECT mac FROM audit_auditevent WHERE seq = 3)")
    database.close()

    plain = relisten("audit", "verify")
    # Without a checkpoint, a cut tail with a rewritten head looks intact.
    assert plain.returncode == 0 and "OK: 3 rows verified" in plain.stdout
    anchored = relisten("audit", "verify", "--checkpoint", str(checkpoint))
    assert anchored.returncode != 0
    assert "AUDIT TRAIL BROKEN at row 4" in anchored.stderr
    assert "deleted from the end" in anchored.stderr


def test_create_clinic_in_tests_is_audited(db: None) -> None:
    """Guards the fixture assumptions above: actions write events from the first one."""
    clinic = create_clinic(actor=None, name="Solo")
    event = AuditEvent.objects.get()
    assert (event.seq, event.event_type, event.clinic_id) == (1, "clinic.created", clinic.public_id)
    assert event.actor_label == "system"
