"""PostgreSQL beside a lake's catalog: what many servers must agree on at once.

A DuckLake's tables are append-only for DataCat: an UPDATE there conflicts with any
other server's write to the same table (DuckLake detects conflicts per table, and does
not retry them). What changes, and what must be unique across servers, lives in the
catalog's own PostgreSQL database instead, in the schema ``datacat``, reached with
psycopg (DuckDB's postgres extension hands its connections back with ``DISCARD ALL``,
which drops session advisory locks, and has no ``INSERT ... RETURNING``):

- ``sessions_live``: each session's serial (``sid``, from a sequence), its status
  fields, state and liveness. Heartbeats, the end and state patches are row updates
  that merge (the end is kept once set, the newest hang event wins by sequence number,
  last seen only moves forward, the state is folded under the row's lock from
  ``state_patches``), so any server may apply any record of any session.
- ``test_ids``: (project, node id) → ``test_id``, unique.
- ``ingest_claims``: which server is storing which ``(session, sequence numbers)``,
  claimed before the lake commit (`Authority.claim`); with the lake's ``ingest_log``
  this gives exactly once across servers (ARCHITECTURE.md, "Exactly once across
  servers").
- advisory locks: each server holds one of its own while it lives (its claims are
  taken over once it is free), the schema lock (set-up and migrations run once), the
  leader lock (background work runs on one server), and the ingest gate (writers share
  it around each lake commit; retention takes it alone for its DELETE, which would
  otherwise lose against every concurrent insert).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import secrets
import time
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from datacat_server.errors import StoreError

__all__ = [
    "INGEST_GATE",
    "LEADER_LOCK",
    "SCHEMA_LOCK",
    "START",
    "Authority",
    "ClaimResult",
    "LiveSession",
    "connect",
    "ensure_schema",
    "runs",
]

log = logging.getLogger("datacat.lake")

#: Advisory lock keys (bigint): "DCAT" and a number.
SCHEMA_LOCK = 0x4443_4154_0000_0001
LEADER_LOCK = 0x4443_4154_0000_0002
INGEST_GATE = 0x4443_4154_0000_0003
#: A server's own lock is this prefix and a random number.
_OWNER_PREFIX = 0x4443_4155 << 32

#: The claim key of a session's start: sequence numbers are never negative.
START = -1

#: What ``ensure_schema`` creates; its version is kept in ``datacat.schema_version``.
PG_SCHEMA_VERSION = 1
_SCHEMA = (
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    "CREATE SCHEMA IF NOT EXISTS datacat",
    "CREATE TABLE IF NOT EXISTS datacat.schema_version (version integer NOT NULL)",
    "CREATE SEQUENCE IF NOT EXISTS datacat.sids AS integer",
    "CREATE SEQUENCE IF NOT EXISTS datacat.test_ids_seq AS integer",
    """CREATE TABLE IF NOT EXISTS datacat.sessions_live (
        sid integer PRIMARY KEY DEFAULT nextval('datacat.sids'),
        id uuid NOT NULL UNIQUE,
        product text NOT NULL,
        state jsonb NOT NULL DEFAULT '{}',
        state_seq bigint NOT NULL DEFAULT -1,
        ended_at bigint,
        hung boolean NOT NULL DEFAULT false,
        hung_seq bigint NOT NULL DEFAULT -1,
        heartbeat_interval double precision,
        last_seen bigint NOT NULL,
        updated_at bigint NOT NULL,
        in_progress jsonb,
        has_run boolean NOT NULL DEFAULT false,
        run_finished boolean NOT NULL DEFAULT false,
        received_at bigint NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS datacat.state_patches (
        sid integer NOT NULL, seq bigint, ts double precision NOT NULL, patch jsonb NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS state_patches_sid ON datacat.state_patches (sid)",
    """CREATE TABLE IF NOT EXISTS datacat.test_ids (
        project text NOT NULL,
        nodeid text NOT NULL,
        test_id integer NOT NULL UNIQUE DEFAULT nextval('datacat.test_ids_seq'),
        PRIMARY KEY (project, nodeid)
    )""",
    """CREATE TABLE IF NOT EXISTS datacat.ingest_claims (
        session_id uuid NOT NULL,
        seqs int8range NOT NULL,
        owner bigint NOT NULL,
        claimed_at timestamptz NOT NULL DEFAULT now(),
        EXCLUDE USING gist (session_id WITH =, seqs WITH &&)
    )""",
)


def connect(dsn: str, *, name: str = "datacat") -> psycopg.Connection[Any]:
    """An autocommit connection to the catalog's database, with TCP keepalives (so that
    a vanished server's locks are freed within a minute, not hours)."""
    try:
        return psycopg.connect(
            dsn,
            autocommit=True,
            application_name=name,
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
            connect_timeout=10,
        )
    except psycopg.Error as exc:
        from datacat_server.store.lake.connect import redact

        raise StoreError(f"cannot connect to the lake's catalog: {redact(str(exc))}") from None


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the ``datacat`` schema (call it holding `SCHEMA_LOCK`)."""
    with conn.transaction():
        for statement in _SCHEMA:
            conn.execute(statement)
        row = conn.execute("SELECT max(version) FROM datacat.schema_version").fetchone()
        have = row[0] if row and row[0] is not None else 0
        if have > PG_SCHEMA_VERSION:
            raise StoreError(
                f"this lake's PostgreSQL schema is at version {have}, newer than this"
                f" release of DataCat understands ({PG_SCHEMA_VERSION}); upgrade DataCat"
            )
        if have < PG_SCHEMA_VERSION:
            conn.execute("INSERT INTO datacat.schema_version VALUES (%s)", [PG_SCHEMA_VERSION])


@contextlib.contextmanager
def advisory_lock(
    conn: psycopg.Connection[Any], key: int, *, timeout: float = 120.0
) -> Iterator[None]:
    """Hold the advisory lock ``key`` (waiting at most ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
        if row and row[0]:
            break
        if time.monotonic() > deadline:
            raise StoreError(f"the lake's lock {key:#x} was not free within {timeout:.0f}s")
        time.sleep(0.05)
    try:
        yield
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT pg_advisory_unlock(%s)", [key])


def runs(seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Sequence numbers as sorted runs of consecutive numbers ``(lo, hi)``, inclusive."""
    out: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


@dataclasses.dataclass(slots=True)
class LiveSession:
    """A session's row of ``sessions_live``: timestamps in seconds."""

    sid: int
    product: str
    state: dict[str, Any]
    state_seq: int
    ended_at: float | None
    hung: bool
    hung_seq: int
    heartbeat_interval: float | None
    last_seen: float
    updated_at: float
    in_progress: dict[str, Any]
    has_run: bool
    run_finished: bool


_LIVE_COLUMNS = (
    "sid, product, state, state_seq, ended_at, hung, hung_seq, heartbeat_interval,"
    " last_seen, updated_at, in_progress, has_run, run_finished"
)


def _live(row: tuple[Any, ...]) -> LiveSession:
    return LiveSession(
        sid=int(row[0]),
        product=row[1],
        state=row[2] or {},
        state_seq=int(row[3]),
        ended_at=None if row[4] is None else row[4] / 1e6,
        hung=bool(row[5]),
        hung_seq=int(row[6]),
        heartbeat_interval=row[7],
        last_seen=row[8] / 1e6,
        updated_at=row[9] / 1e6,
        in_progress=row[10] or {},
        has_run=bool(row[11]),
        run_finished=bool(row[12]),
    )


def _us(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1e6)


@dataclasses.dataclass
class ClaimResult:
    """What `Authority.claim` found, by session id: sequence numbers this server may
    store now (``mine``), ones another live server is storing (``busy``), and ones
    claimed before whose fate the lake's ``ingest_log`` must tell (``check``: stored
    there means stored)."""

    mine: dict[str, list[tuple[int, int]]] = dataclasses.field(default_factory=dict)
    busy: dict[str, list[tuple[int, int]]] = dataclasses.field(default_factory=dict)
    check: dict[str, list[tuple[int, int]]] = dataclasses.field(default_factory=dict)


class Authority:
    """One server's PostgreSQL connection for its writer: its own advisory lock (held
    while it lives), claims, ids, and the live session rows."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: psycopg.Connection[Any] | None = None
        self.owner = 0
        self.reconnect()

    def reconnect(self) -> None:
        """A new connection and a new owner id (claims of the old one are free to take
        over once its lock went with its connection)."""
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
        self.conn = connect(self.dsn, name="datacat writer")
        self.owner = _OWNER_PREFIX | secrets.randbits(31)
        self.conn.execute("SELECT pg_advisory_lock(%s)", [self.owner])

    @property
    def db(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed:
            self.reconnect()
        assert self.conn is not None
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
            self.conn = None

    # -- exactly once --------------------------------------------------------------------

    def claim(self, wanted: dict[str, list[tuple[int, int]]]) -> ClaimResult:
        """Claim runs of sequence numbers per session for this server.

        A run nobody claimed is this server's. A run that overlaps claims is split: the
        parts claimed by this server (a commit of its own that failed) or by a server
        that is gone (its lock is free: it died, and PostgreSQL freed the lock with its
        connection) are taken over; the parts a live server claimed are busy unless the
        lake says they are stored; parts nobody claimed are claimed again. Claims made
        before may have been stored: everything not freshly claimed is also returned in
        ``check``.
        """
        result = ClaimResult()
        pending = wanted
        for _ in range(5):
            refused = self._insert(pending, result)
            if not refused:
                return result
            pending = self._settle(refused, result)
            if not pending:
                return result
        raise StoreError("claims kept changing under this server; retry")

    def _insert(
        self, wanted: dict[str, list[tuple[int, int]]], result: ClaimResult
    ) -> dict[str, list[tuple[int, int]]]:
        ids, los, his = [], [], []
        for key, spans in wanted.items():
            for lo, hi in spans:
                ids.append(key)
                los.append(lo)
                his.append(hi)
        got = self.db.execute(
            "INSERT INTO datacat.ingest_claims (session_id, seqs, owner)"
            " SELECT s, int8range(lo, hi, '[]'), %s"
            " FROM unnest(%s::uuid[], %s::int8[], %s::int8[]) AS c(s, lo, hi)"
            " ON CONFLICT DO NOTHING RETURNING session_id::text, lower(seqs), upper(seqs) - 1",
            [self.owner, ids, los, his],
        ).fetchall()
        taken = {(str(k), int(lo), int(hi)) for k, lo, hi in got}
        refused: dict[str, list[tuple[int, int]]] = {}
        for key, lo, hi in zip(ids, los, his, strict=True):
            if (key, lo, hi) in taken:
                result.mine.setdefault(key, []).append((lo, hi))
            else:
                refused.setdefault(key, []).append((lo, hi))
        return refused

    def _settle(
        self, refused: dict[str, list[tuple[int, int]]], result: ClaimResult
    ) -> dict[str, list[tuple[int, int]]]:
        """Sort refused runs into mine (taken over), busy, and to claim again."""
        ids, los, his = [], [], []
        for key, spans in refused.items():
            for lo, hi in spans:
                ids.append(key)
                los.append(lo)
                his.append(hi)
        rows = self.db.execute(
            "SELECT DISTINCT c.session_id::text, lower(c.seqs), upper(c.seqs) - 1, c.owner"
            " FROM datacat.ingest_claims c"
            " JOIN unnest(%s::uuid[], %s::int8[], %s::int8[]) AS w(s, lo, hi)"
            " ON c.session_id = w.s AND c.seqs && int8range(w.lo, w.hi, '[]')",
            [ids, los, his],
        ).fetchall()
        owners = {int(owner) for *_, owner in rows}
        alive = {owner for owner in owners if owner != self.owner and self._alive(owner)}
        again: dict[str, list[tuple[int, int]]] = {}
        for key, spans in refused.items():
            claims = sorted((int(lo), int(hi), int(owner)) for k, lo, hi, owner in rows if k == key)
            for lo, hi in spans:
                for part_lo, part_hi, owner in _split(lo, hi, claims):
                    part = (part_lo, part_hi)
                    if owner is None:
                        again.setdefault(key, []).append(part)
                        continue
                    result.check.setdefault(key, []).append(part)
                    if owner == self.owner or (owner not in alive and self._take(key, owner)):
                        result.mine.setdefault(key, []).append(part)
                    else:
                        result.busy.setdefault(key, []).append(part)
        return again

    def _alive(self, owner: int) -> bool:
        """Whether the server that claimed as ``owner`` still holds its lock."""
        row = self.db.execute("SELECT pg_try_advisory_lock(%s)", [owner]).fetchone()
        if row and row[0]:
            self.db.execute("SELECT pg_advisory_unlock(%s)", [owner])
            return False
        return True

    def _take(self, key: str, owner: int) -> bool:
        """Take over every claim of a dead ``owner`` on this session."""
        self.db.execute(
            "UPDATE datacat.ingest_claims SET owner = %s, claimed_at = now()"
            " WHERE session_id = %s AND owner = %s",
            [self.owner, key, owner],
        )
        return True

    def still_mine(self, claimed: dict[str, list[tuple[int, int]]]) -> bool:
        """Whether every claim covering ``claimed`` is still this server's (checked just
        before the lake commit)."""
        if not claimed:
            return True
        ids = [k for k, spans in claimed.items() for _ in spans]
        los = [lo for spans in claimed.values() for lo, _ in spans]
        his = [hi for spans in claimed.values() for _, hi in spans]
        row = self.db.execute(
            "SELECT count(*) FROM datacat.ingest_claims c"
            " JOIN unnest(%s::uuid[], %s::int8[], %s::int8[]) AS w(s, lo, hi)"
            " ON c.session_id = w.s AND c.seqs && int8range(w.lo, w.hi, '[]')"
            " WHERE c.owner <> %s",
            [ids, los, his, self.owner],
        ).fetchone()
        return row is not None and int(row[0]) == 0

    # -- the ingest gate --------------------------------------------------------------

    @contextlib.contextmanager
    def gate(self) -> Iterator[None]:
        """The ingest gate, shared: retention's DELETE waits for it, alone."""
        self.db.execute("SELECT pg_advisory_lock_shared(%s)", [INGEST_GATE])
        try:
            yield
        finally:
            with contextlib.suppress(psycopg.Error):
                self.db.execute("SELECT pg_advisory_unlock_shared(%s)", [INGEST_GATE])

    @contextlib.contextmanager
    def exclusive_gate(self) -> Iterator[None]:
        """The ingest gate, alone: every server's lake commits wait meanwhile."""
        self.db.execute("SELECT pg_advisory_lock(%s)", [INGEST_GATE])
        try:
            yield
        finally:
            with contextlib.suppress(psycopg.Error):
                self.db.execute("SELECT pg_advisory_unlock(%s)", [INGEST_GATE])

    # -- sessions ---------------------------------------------------------------------

    def create_sessions(self, starts: Sequence[tuple[str, str, float | None, float]]) -> None:
        """Rows for new sessions ``(id, product, heartbeat interval, now)``; a session
        that has one already keeps it (and its sid)."""
        if not starts:
            return
        self.db.execute(
            "INSERT INTO datacat.sessions_live"
            " (id, product, heartbeat_interval, last_seen, updated_at, received_at)"
            " SELECT i, p, h, n, n, n"
            " FROM unnest(%s::uuid[], %s::text[], %s::float8[], %s::int8[]) AS s(i, p, h, n)"
            " ON CONFLICT (id) DO NOTHING",
            [
                [s[0] for s in starts],
                [s[1] for s in starts],
                [s[2] for s in starts],
                [_us(s[3]) for s in starts],
            ],
        )

    def sessions(self, keys: Sequence[str]) -> dict[str, LiveSession]:
        """The live rows of these sessions (those that exist)."""
        if not keys:
            return {}
        rows = self.db.execute(
            f"SELECT id::text, {_LIVE_COLUMNS} FROM datacat.sessions_live WHERE id = ANY(%s)",
            [list(keys)],
        ).fetchall()
        return {str(row[0]): _live(row[1:]) for row in rows}

    def update_sessions(
        self,
        entries: Sequence[Any],
        patches: Sequence[tuple[int, int | None, float, dict[str, Any]]],
        *,
        merge: Any,
    ) -> dict[int, tuple[dict[str, Any], int]]:
        """Merge the staged fields of ``entries`` (`SessionEntry`) into their rows, and
        fold ``patches`` ``(sid, seq, timestamp, patch)`` into their sessions' state
        under the rows' locks, in one transaction. Returns the new state of each
        session that had patches: sid → (state, state_seq).

        What two servers change concurrently composes: an end once set stays, the hang
        event with the highest sequence number wins, last seen and updated at only move
        forward, and the state is the patches in sequence order (`merge`: the store's
        one deep merge), folded again from all of them when one arrives out of order.
        """
        states: dict[int, tuple[dict[str, Any], int]] = {}
        with self.db.transaction():
            if entries:
                self.db.execute(
                    "UPDATE datacat.sessions_live l SET"
                    " ended_at = coalesce(l.ended_at, u.ended_at),"
                    " hung = CASE WHEN u.hung_seq > l.hung_seq THEN u.hung ELSE l.hung END,"
                    " hung_seq = greatest(l.hung_seq, u.hung_seq),"
                    " heartbeat_interval = u.heartbeat_interval,"
                    " last_seen = greatest(l.last_seen, u.last_seen),"
                    " updated_at = greatest(l.updated_at, u.updated_at),"
                    " in_progress = u.in_progress,"
                    " has_run = l.has_run OR u.has_run,"
                    " run_finished = l.run_finished OR u.run_finished"
                    " FROM unnest(%s::int[], %s::int8[], %s::bool[], %s::int8[], %s::float8[],"
                    " %s::int8[], %s::int8[], %s::jsonb[], %s::bool[], %s::bool[])"
                    " AS u(sid, ended_at, hung, hung_seq, heartbeat_interval, last_seen,"
                    " updated_at, in_progress, has_run, run_finished)"
                    " WHERE l.sid = u.sid",
                    [
                        [e.sid for e in entries],
                        [_us(e.ended_at) for e in entries],
                        [e.hung for e in entries],
                        [e.hung_seq for e in entries],
                        [e.heartbeat_interval for e in entries],
                        [_us(e.last_seen) for e in entries],
                        [_us(e.updated_at) for e in entries],
                        [json.dumps(e.in_progress) for e in entries],
                        [e.has_run for e in entries],
                        [e.run_finished for e in entries],
                    ],
                )
            if patches:
                states = self._fold_patches(patches, merge)
        return states

    def _fold_patches(
        self, patches: Sequence[tuple[int, int | None, float, dict[str, Any]]], merge: Any
    ) -> dict[int, tuple[dict[str, Any], int]]:
        db = self.db
        db.execute(
            "INSERT INTO datacat.state_patches (sid, seq, ts, patch)"
            " SELECT * FROM unnest(%s::int[], %s::int8[], %s::float8[], %s::jsonb[])",
            [
                [p[0] for p in patches],
                [p[1] for p in patches],
                [p[2] for p in patches],
                [json.dumps(p[3]) for p in patches],
            ],
        )
        sids = sorted({p[0] for p in patches})
        current = {
            int(sid): (state or {}, int(seq))
            for sid, state, seq in db.execute(
                "SELECT sid, state, state_seq FROM datacat.sessions_live"
                " WHERE sid = ANY(%s) ORDER BY sid FOR UPDATE",
                [sids],
            ).fetchall()
        }
        out: dict[int, tuple[dict[str, Any], int]] = {}
        for sid in sids:
            if sid not in current:
                continue
            state, state_seq = current[sid]
            mine = [p for p in patches if p[0] == sid]
            if all(p[1] is None or p[1] > state_seq for p in mine):
                # In order after what is folded: apply ours, numbered ones by number.
                ordered = sorted(mine, key=lambda p: (p[1] is None, p[1] or 0, p[2]))
            else:
                # One arrived after a newer one: fold every patch again, in order.
                state = {}
                ordered = [
                    (sid, seq, ts, patch)
                    for seq, ts, patch in db.execute(
                        "SELECT DISTINCT ON (coalesce(seq, -1), ts) seq, ts, patch"
                        " FROM datacat.state_patches WHERE sid = %s"
                        " ORDER BY coalesce(seq, -1), ts",
                        [sid],
                    ).fetchall()
                ]
                ordered.sort(key=lambda p: (p[1] is None, p[1] or 0, p[2]))
                state_seq = -1
            for _, seq, _, patch in ordered:
                state = merge(state, patch)
                if seq is not None:
                    state_seq = max(state_seq, seq)
            db.execute(
                "UPDATE datacat.sessions_live SET state = %s, state_seq = %s WHERE sid = %s",
                [json.dumps(state), state_seq, sid],
            )
            out[sid] = (state, state_seq)
        return out

    # -- test ids ---------------------------------------------------------------------

    def test_ids(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The id of each (project, node id), made for those that have none."""
        found: dict[tuple[str, str], int] = {}
        wanted = list(dict.fromkeys(keys))
        for _ in range(3):
            if not wanted:
                break
            rows = self.db.execute(
                "WITH w(project, nodeid) AS (SELECT * FROM unnest(%s::text[], %s::text[])),"
                " made AS (INSERT INTO datacat.test_ids (project, nodeid) SELECT * FROM w"
                " ON CONFLICT DO NOTHING RETURNING project, nodeid, test_id)"
                " SELECT * FROM made UNION ALL"
                " SELECT t.project, t.nodeid, t.test_id FROM datacat.test_ids t"
                " JOIN w USING (project, nodeid)",
                [[k[0] for k in wanted], [k[1] for k in wanted]],
            ).fetchall()
            found.update(((p, n), int(i)) for p, n, i in rows)
            # Made by another server meanwhile: this statement's snapshot missed it.
            wanted = [k for k in wanted if k not in found]
        if wanted:
            raise StoreError(f"no test id could be had for {len(wanted)} tests; retry")
        return found

    # -- retention --------------------------------------------------------------------

    def forget(self, sids: Sequence[int]) -> None:
        """Delete what PostgreSQL holds of these sessions."""
        if not sids:
            return
        with self.db.transaction():
            rows = self.db.execute(
                "DELETE FROM datacat.sessions_live WHERE sid = ANY(%s) RETURNING id",
                [list(sids)],
            ).fetchall()
            self.db.execute("DELETE FROM datacat.state_patches WHERE sid = ANY(%s)", [list(sids)])
            self.db.execute(
                "DELETE FROM datacat.ingest_claims WHERE session_id = ANY(%s)",
                [[row[0] for row in rows]],
            )


def _split(
    lo: int, hi: int, claims: Sequence[tuple[int, int, int]]
) -> list[tuple[int, int, int | None]]:
    """[lo, hi] cut along ``claims`` (sorted ``(lo, hi, owner)``, not overlapping each
    other): each part with the owner of the claim covering it, None where none does."""
    parts: list[tuple[int, int, int | None]] = []
    at = lo
    for c_lo, c_hi, owner in claims:
        if c_hi < at or c_lo > hi:
            continue
        if c_lo > at:
            parts.append((at, c_lo - 1, None))
        parts.append((max(at, c_lo), min(hi, c_hi), owner))
        at = min(hi, c_hi) + 1
        if at > hi:
            break
    if at <= hi:
        parts.append((at, hi, None))
    return parts
