"""Full-text search over the transcripts a user may see.

SQLite: an FTS5 table (`transcripts_segment_fts`, rowid = segment id, Porter stemming) that
triggers on `transcripts_segment` keep in step with every insert, correction and delete,
whoever makes it (the pipeline, a correction, the cascade when a recording is erased).
PostgreSQL: a GIN index on to_tsvector('english', text); queries use websearch_to_tsquery.
Both are created by migration 0002.

Access is decided by relisten.access.segments_for_user, compiled into the same query as a
sub-select, so a LIMIT never counts hits the user may not see. User input only ever reaches
the database as a bound parameter; for FTS5 it is first rewritten into quoted terms, so its
query syntax cannot be used (or broken) from the search box.
"""

from __future__ import annotations

import html
import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connection

from relisten.access import Act, segments_for_user
from relisten.accounts.models import User
from relisten.transcripts.models import Segment, Transcript

FTS_TABLE = "transcripts_segment_fts"
PG_CONFIG = "english"
MAX_QUERY_CHARS = 200
MAX_TERMS = 12
# Private-use characters mark the match inside the raw snippet; they are swapped for <mark>
# only after the text has been HTML-escaped, so the transcript's own text is never markup.
_OPEN, _CLOSE = "\ue000", "\ue001"
_PG_HEADLINE = f"StartSel={_OPEN}, StopSel={_CLOSE}, MaxWords=24, MinWords=10, MaxFragments=1"
# A "quoted phrase" (optionally -"negated", closing quote optional) or a bare word.
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')


@dataclass(frozen=True)
class SearchHit:
    segment: Segment  # with transcript, recording, session, episode, client and speaker loaded
    snippet_html: str  # escaped text with the matches in <mark>

    @property
    def transcript(self) -> Transcript:
        return self.segment.transcript

    @property
    def seconds(self) -> float:
        return round(self.segment.start, 2)

    @property
    def clock(self) -> str:
        return clock(self.segment.start)


def clock(seconds: float) -> str:
    """H:MM:SS (or M:SS under an hour), as players show it."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def is_sqlite() -> bool:
    return connection.vendor == "sqlite"


# ---- keeping the index in step ---------------------------------------------------------------

def index_transcript(transcript: Transcript) -> int:
    """(Re)index a transcript's segments; idempotent. Returns how many segments it holds.

    The SQLite triggers already index every segment as it is written; doing it again here
    repairs an index that missed rows (e.g. a database restored from a dump without the FTS
    table's contents). PostgreSQL maintains its expression index by itself.
    """
    count = Segment.objects.filter(transcript=transcript).count()
    if is_sqlite():
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {FTS_TABLE} WHERE rowid IN "  # noqa: S608 - constant table name
                "(SELECT id FROM transcripts_segment WHERE transcript_id = %s)",
                [transcript.pk],
            )
            cursor.execute(
                f"INSERT INTO {FTS_TABLE}(rowid, text) "  # noqa: S608 - constant table name
                "SELECT id, text FROM transcripts_segment WHERE transcript_id = %s",
                [transcript.pk],
            )
    return count


def unindex_transcript(transcript: Transcript) -> None:
    """Remove a transcript's segments from the index (its rows are about to go, or have)."""
    if is_sqlite():
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {FTS_TABLE} WHERE rowid IN "  # noqa: S608 - constant table name
                "(SELECT id FROM transcripts_segment WHERE transcript_id = %s)",
                [transcript.pk],
            )


def indexed_segment_ids(transcript: Transcript) -> set[int]:
    """Segment ids of this transcript present in the SQLite index (for tests and checks)."""
    if not is_sqlite():
        return set(Segment.objects.filter(transcript=transcript).values_list("id", flat=True))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT rowid FROM {FTS_TABLE} WHERE rowid IN "  # noqa: S608 - constant table name
            "(SELECT id FROM transcripts_segment WHERE transcript_id = %s)",
            [transcript.pk],
        )
        return {row[0] for row in cursor.fetchall()}


# ---- searching -------------------------------------------------------------------------------

def _fts5_term(text: str, prefix: bool = False) -> str | None:
    """One quoted FTS5 string (a word or a phrase), or None if it holds no word at all."""
    if not any(ch.isalnum() for ch in text):
        return None  # PostgreSQL ignores bare punctuation too
    return '"' + text.replace('"', '""') + '"' + ("*" if prefix else "")


def fts5_query(text: str) -> str:
    """The search box's words as an FTS5 query, with PostgreSQL's websearch meaning.

    All words are required; "a phrase" in quotes, OR between alternatives, -word to leave a
    word out, word* for a prefix: the same things websearch_to_tsquery understands, so both
    databases answer a query alike. Every word or phrase becomes a quoted FTS5 string, so
    FTS5's own syntax (NEAR, column filters, parentheses, ^) is never reached from the box and
    nothing typed can be a syntax error. A query of only -words finds nothing here.
    """
    clauses: list[list[str]] = []
    excluded: list[str] = []
    pending_or = False
    for match in _TOKEN.finditer(text[:MAX_QUERY_CHARS]):
        if len(clauses) + len(excluded) >= MAX_TERMS:
            break
        negated, phrase, bare = match.group(1) == "-", match.group(2), match.group(3)
        if phrase is None and bare.upper() == "OR":
            pending_or = bool(clauses)
            continue
        if phrase is not None:
            term = _fts5_term(phrase)
        else:
            if bare.startswith("-") and len(bare) > 1:
                negated, bare = True, bare[1:]
            prefix = bare.endswith("*")
            term = _fts5_term(bare.rstrip("*"), prefix=prefix and len(bare) > 1)
        if term is None:
            continue
        if negated:
            excluded.append(term)
        elif pending_or:
            clauses[-1].append(term)
        else:
            clauses.append([term])
        pending_or = False
    if not clauses:
        return ""
    query = " AND ".join(f"({' OR '.join(alternatives)})" for alternatives in clauses)
    return f"({query})" + "".join(f" NOT {term}" for term in excluded)


def _mark(raw: str) -> str:
    escaped = html.escape(raw)
    return escaped.replace(_OPEN, "<mark>").replace(_CLOSE, "</mark>")


def _allowed_ids_sql(user: User) -> tuple[str, list[Any]]:
    sql, params = segments_for_user(user, Act.VIEW).values("id").query.sql_with_params()
    return sql, list(params)


def _sqlite_hits(user: User, query: str, limit: int) -> list[tuple[int, str]]:
    match = fts5_query(query)
    if not match:
        return []
    allowed_sql, allowed_params = _allowed_ids_sql(user)
    sql = (
        f"SELECT rowid, snippet({FTS_TABLE}, 0, %s, %s, %s, 16) "  # noqa: S608 - see below
        f"FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s AND rowid IN ({allowed_sql}) "
        "ORDER BY rank, rowid LIMIT %s"
    )
    # The only text spliced into the SQL is the constant table name and the access policy's
    # own compiled query; everything from the request is a parameter.
    params: list[Any] = [_OPEN, _CLOSE, "…", match, *allowed_params, limit]
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [(row[0], row[1]) for row in cursor.fetchall()]
    except DatabaseError:
        # Quoting leaves no FTS5 syntax to get wrong; should an odd input still be refused,
        # the person sees "no results" rather than an error page.
        return []


# "anx*": a whole word of letters and digits ending in *, as the search box's help describes.
_PG_PREFIX = re.compile(r"(?<!\S)([^\W_]+)\*(?!\S)")


def postgres_query(text: str) -> tuple[str, list[str]]:
    """SQL for the tsquery and its parameters: websearch syntax for the words, plus one
    prefix term per "word*" (only letters and digits reach to_tsquery, so nothing typed can be
    tsquery syntax)."""
    text = text[:MAX_QUERY_CHARS]
    prefixes = [f"{word}:*" for word in _PG_PREFIX.findall(text)[:MAX_TERMS]]
    rest = _PG_PREFIX.sub(" ", text).strip()
    sql = " && ".join(
        ["websearch_to_tsquery('english', %s)"] * bool(rest)
        + ["to_tsquery('english', %s)"] * len(prefixes)
    )
    return sql, ([rest] if rest else []) + prefixes


def postgres_sql(
    query: str, allowed_sql: str, allowed_params: list[Any], limit: int
) -> tuple[str, list[Any]] | None:
    """The PostgreSQL search statement and its parameters, or None for an empty query."""
    tsquery_sql, tsquery_params = postgres_query(query)
    if not tsquery_sql:
        return None
    # to_tsvector('english', s.text) is written exactly as the GIN index's expression, so the
    # planner can use the index. Only constant SQL and the access policy's own compiled query
    # are spliced in; everything from the request is a parameter.
    sql = (
        "SELECT s.id, ts_headline('english', s.text, q.query, %s) "  # noqa: S608
        f"FROM transcripts_segment s, (SELECT {tsquery_sql}) AS q(query) "
        "WHERE to_tsvector('english', s.text) @@ q.query "
        f"AND s.id IN ({allowed_sql}) "
        "ORDER BY ts_rank(to_tsvector('english', s.text), q.query) DESC, s.id LIMIT %s"
    )
    return sql, [_PG_HEADLINE, *tsquery_params, *allowed_params, limit]


def _postgres_hits(user: User, query: str, limit: int) -> list[tuple[int, str]]:
    allowed_sql, allowed_params = _allowed_ids_sql(user)
    statement = postgres_sql(query, allowed_sql, allowed_params, limit)
    if statement is None:
        return []
    with connection.cursor() as cursor:
        cursor.execute(*statement)
        return [(row[0], row[1]) for row in cursor.fetchall()]


def search_segments(user: User, query: str, limit: int = 50) -> list[SearchHit]:
    """Segments the user may see whose text matches `query`, best first, with snippets."""
    limit = max(1, min(limit, 200))
    # Control characters mean nothing in a search and PostgreSQL refuses NUL in any string.
    query = "".join(ch if ch.isprintable() else " " for ch in query)
    hits = _sqlite_hits(user, query, limit) if is_sqlite() else _postgres_hits(user, query, limit)
    if not hits:
        return []
    segments = Segment.objects.filter(pk__in=[pk for pk, _ in hits]).select_related(
        "speaker", "transcript__recording__session__episode__client__clinic"
    )
    by_id = {segment.pk: segment for segment in segments}
    return [
        SearchHit(segment=by_id[pk], snippet_html=_mark(snippet))
        for pk, snippet in hits
        if pk in by_id
    ]


def hit_transcripts(hits: list[SearchHit]) -> list[Transcript]:
    """The distinct transcripts among the hits, in order of first appearance."""
    seen: dict[uuid.UUID, Transcript] = {}
    for hit in hits:
        seen.setdefault(hit.transcript.public_id, hit.transcript)
    return list(seen.values())
