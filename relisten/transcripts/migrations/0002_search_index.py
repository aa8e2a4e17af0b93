"""Full-text search index for transcript segments, one per database vendor.

SQLite: an FTS5 table keyed by segment id (rowid), with Porter stemming so "worried" finds
"worry" as PostgreSQL's English configuration does, kept in step by triggers on every insert,
update of the text and delete (including Django's cascade when a transcript is replaced or a
recording erased). Existing segments are indexed once here.

Caution for later migrations: when Django's SQLite schema editor has to *rebuild*
transcripts_segment (most column alterations), the table is dropped and re-created and these
triggers go with it; such a migration must re-run `_sqlite_forward` afterwards. The search
tests (a corrected segment is found by its new text) fail if that is forgotten.

PostgreSQL: a GIN expression index on to_tsvector('english', text), which the database keeps
current by itself; the search query repeats the exact expression so the planner uses it.
"""

from django.db import migrations

FTS = "transcripts_segment_fts"

SQLITE_FORWARD = [
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS} USING fts5(text, tokenize='porter unicode61')",
    f"""CREATE TRIGGER IF NOT EXISTS transcripts_segment_fts_insert
        AFTER INSERT ON transcripts_segment BEGIN
            INSERT INTO {FTS}(rowid, text) VALUES (new.id, new.text);
        END""",
    f"""CREATE TRIGGER IF NOT EXISTS transcripts_segment_fts_update
        AFTER UPDATE OF text ON transcripts_segment BEGIN
            DELETE FROM {FTS} WHERE rowid = old.id;
            INSERT INTO {FTS}(rowid, text) VALUES (new.id, new.text);
        END""",
    f"""CREATE TRIGGER IF NOT EXISTS transcripts_segment_fts_delete
        AFTER DELETE ON transcripts_segment BEGIN
            DELETE FROM {FTS} WHERE rowid = old.id;
        END""",
    f"DELETE FROM {FTS}",
    f"INSERT INTO {FTS}(rowid, text) SELECT id, text FROM transcripts_segment",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS transcripts_segment_fts_insert",
    "DROP TRIGGER IF EXISTS transcripts_segment_fts_update",
    "DROP TRIGGER IF EXISTS transcripts_segment_fts_delete",
    f"DROP TABLE IF EXISTS {FTS}",
]
POSTGRES_FORWARD = [
    "CREATE INDEX IF NOT EXISTS transcripts_segment_text_fts ON transcripts_segment "
    "USING GIN (to_tsvector('english', text))",
]
POSTGRES_BACKWARD = ["DROP INDEX IF EXISTS transcripts_segment_text_fts"]


def _run(schema_editor, statements):  # type: ignore[no-untyped-def]
    for sql in statements:
        schema_editor.execute(sql)


def _forward(apps, schema_editor):  # type: ignore[no-untyped-def]
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        _run(schema_editor, SQLITE_FORWARD)
    elif vendor == "postgresql":
        _run(schema_editor, POSTGRES_FORWARD)


def _backward(apps, schema_editor):  # type: ignore[no-untyped-def]
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        _run(schema_editor, SQLITE_BACKWARD)
    elif vendor == "postgresql":
        _run(schema_editor, POSTGRES_BACKWARD)


class Migration(migrations.Migration):

    dependencies = [
        ("transcripts", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(_forward, _backward),
    ]
