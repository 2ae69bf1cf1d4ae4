"""The writer of one server on a lake that other servers write too.

It is the file store's `Writer` (one thread, group commit, staging, Arrow inserts by
column name) with what a shared lake changes:

1. **Claims before staging.** The ``(session, seq)`` of a group's records, and each
   session start (claim key `pg.START`), are claimed in PostgreSQL
   (`Authority.claim`). What another server claimed is looked up in the lake's
   ``ingest_log``: stored there means a duplicate; not stored, and that server alive,
   means it is storing them now (503, retry); its claims are taken over once it is
   gone. A request that fails gives its claims back.
2. **Ids from PostgreSQL**: a new session's ``sid`` (its live row is made with its
   start's claim), a test's ``test_id``.
3. **Session state in PostgreSQL, before the lake commit**: heartbeats, the end, hang
   events and state patches are merged into ``sessions_live`` (`Authority.
   update_sessions`), so two servers' updates of one session compose. A lake commit
   that then fails leaves only what applying the same records again changes nothing
   in (the client retries them).
4. **The lake is only appended to**: session starts to ``session_rows``, tests to
   ``test_rows``, runs to ``run_starts`` and their finish to ``run_finishes``, and the
   claims stored to ``ingest_log`` in the same commit, under the ingest gate (shared).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from datacat_client import wire
from datacat_server.errors import StoreError, WriterBusyError
from datacat_server.store import build, tables
from datacat_server.store.health import StoreHealth
from datacat_server.store.lake import ddl, pg
from datacat_server.store.lake.connect import redact
from datacat_server.store.merge import deep_merge
from datacat_server.store.seqset import SeqSet
from datacat_server.store.staging import ResultBlock, SessionEntry, Staging
from datacat_server.store.transactions import transaction
from datacat_server.store.writer import Writer, _Request

__all__ = ["CRASH_AFTER_COMMIT", "LakeWriter"]

log = logging.getLogger("datacat.lake")

#: Test-only: with this environment variable set to a number N, the server dies
#: (SIGKILL, by itself) right after its Nth lake commit of records, before answering:
#: what the tests of exactly-once across servers need to happen at a known moment.
CRASH_AFTER_COMMIT = "DATACAT_TEST_CRASH_AFTER_COMMIT"

#: Attempts at one lake commit that DuckLake refused for a conflict.
COMMIT_ATTEMPTS = 5

Spans = dict[str, list[tuple[int, int]]]


def _spans_of(request: _Request) -> Spans:
    """The claim keys of a request: its sequence numbers (if it dedupes) and each
    session start's key, as runs per session."""
    seqs: dict[str, list[int]] = {}
    for record in request.records:
        if type(record) is wire.SessionStart:
            seqs.setdefault(record.session_id, []).append(pg.START)
        if request.dedupe:
            seqs.setdefault(record.session_id, []).append(record.seq)
    if request.dedupe:
        for block in request.result_columns:
            seqs.setdefault(block.session_id, []).extend(block.seq)
    return {key: pg.runs(values) for key, values in seqs.items()}


def _minus(spans: list[tuple[int, int]], gone: SeqSet) -> list[tuple[int, int]]:
    """``spans`` without the numbers in ``gone``."""
    if not len(gone):
        return spans
    out: list[tuple[int, int]] = []
    holes = gone.intervals
    for lo, hi in spans:
        at = lo
        for h_lo, h_hi in holes:
            if h_hi < at or h_lo > hi:
                continue
            if h_lo > at:
                out.append((at, h_lo - 1))
            at = h_hi + 1
        if at <= hi:
            out.append((at, hi))
    return out


def _seqset(spans: list[tuple[int, int]]) -> SeqSet:
    seqs = SeqSet()
    for lo, hi in sorted(spans):
        seqs.add_all(list(range(lo, hi + 1)))
    return seqs


class LakeWriter(Writer):
    """`Writer` for a lake; ``db`` hands out cursors on the lake, ``authority`` is this
    server's PostgreSQL connection."""

    SESSIONS = ddl.SESSION_ROWS
    TESTS = ddl.TEST_ROWS
    RUN_STARTS = ddl.RUN_STARTS

    def __init__(
        self,
        db: Any,
        authority: pg.Authority,
        *,
        soft_flush_interval: float = 0.5,
        clock: Callable[[], float] = time.time,
        health: StoreHealth | None = None,
        crash_after: int | None = None,
    ) -> None:
        self._pg = authority
        #: Claim keys per request of the group being written (by ``id(request)``).
        self._spans: dict[int, Spans] = {}
        #: Sessions whose start this server stores now, with their sid.
        self._fresh: dict[str, int] = {}
        #: Claim keys of the requests staged in the current transaction.
        self._logged: Spans = {}
        self._crash_after = crash_after
        self._commits = 0
        super().__init__(db, soft_flush_interval=soft_flush_interval, clock=clock, health=health)

    # -- claims ----------------------------------------------------------------------

    def _process(self, requests: list[_Request]) -> None:
        if not self._usable():
            super()._process(requests)
            return
        try:
            ready = self._claim(requests)
        except Exception as exc:
            self._pg_failed(exc)
            refusal = StoreError(f"the lake's catalog could not be reached: {_said(exc)}")
            for request in requests:
                request.future.set_exception(refusal)
            return
        try:
            if ready:
                super()._process(ready)
        finally:
            self._release([r for r in ready if r.future.exception() is not None])
            for request in ready:
                self._spans.pop(id(request), None)
            self._fresh.clear()

    def _claim(self, requests: list[_Request]) -> list[_Request]:
        """Claim every request's keys; returns the requests that may go on (the others
        have their answer: 503 while another server stores the same records)."""
        wanted: Spans = {}
        per_request: list[tuple[_Request, Spans]] = []
        for request in requests:
            spans = _spans_of(request)
            for key, found in spans.items():
                cached = self._sessions.get(key)
                left = found if cached is None else _minus(found, cached.seqs)
                spans[key] = left
                wanted.setdefault(key, []).extend(left)
            per_request.append((request, spans))
        wanted = {key: pg.runs(_expand(runs)) for key, runs in wanted.items() if runs}
        claimed = self._pg.claim(wanted) if wanted else pg.ClaimResult()
        stored = self._stored(claimed.check)
        for key, seqs in stored.items():
            cached = self._sessions.get(key)
            if cached is not None:
                for lo, hi in seqs.intervals:
                    if lo >= 0:
                        cached.seqs.add_all(list(range(lo, hi + 1)))
        busy = {
            key: remaining
            for key, spans in claimed.busy.items()
            if (remaining := _minus(spans, stored.get(key, SeqSet())))
        }
        ready = []
        for request, spans in per_request:
            if any(_overlap(spans.get(key, []), runs) for key, runs in busy.items()):
                request.future.set_exception(
                    WriterBusyError(
                        "another server is storing records of this batch; retry shortly"
                    )
                )
                continue
            self._spans[id(request)] = {
                key: left
                for key, runs in spans.items()
                if (left := _minus(runs, stored.get(key, SeqSet())))
            }
            ready.append(request)
        self._start_sessions(ready, stored)
        self._refresh([key for request in ready for key in self._keys(request)])
        return ready

    def _stored(self, check: Spans) -> dict[str, SeqSet]:
        """Which of these claimed numbers the lake's ``ingest_log`` holds."""
        if not check:
            return {}
        ids, los, his = [], [], []
        for key, spans in check.items():
            for lo, hi in spans:
                ids.append(key)
                los.append(lo)
                his.append(hi)
        wanted = pa.table(
            {
                "session_id": pa.array(ids, pa.string()),
                "lo": pa.array(los, pa.int64()),
                "hi": pa.array(his, pa.int64()),
            }
        )
        relation = self._cur.from_arrow(wanted).query(
            "wanted",
            "SELECT DISTINCT l.session_id::VARCHAR, greatest(l.lo, w.lo), least(l.hi, w.hi)"
            " FROM ingest_log l JOIN wanted w ON l.session_id = CAST(w.session_id AS UUID)"
            " AND l.lo <= w.hi AND l.hi >= w.lo",
        )
        rows = relation.fetchall() if relation is not None else []
        found: dict[str, SeqSet] = {}
        for key, lo, hi in rows:
            found.setdefault(str(key), SeqSet()).add_all(list(range(int(lo), int(hi) + 1)))
        return found

    def _start_sessions(self, requests: list[_Request], stored: dict[str, SeqSet]) -> None:
        """Live rows (and sids) for the sessions these requests start and this server
        claimed the start of: staged as new, whether or not an earlier attempt left
        their row in PostgreSQL."""
        starts: dict[str, wire.SessionStart] = {}
        for request in requests:
            spans = self._spans.get(id(request), {})
            for record in request.records:
                if type(record) is not wire.SessionStart:
                    continue
                key = record.session_id
                if pg.START in stored.get(key, SeqSet()):
                    continue
                if any(lo <= pg.START <= hi for lo, hi in spans.get(key, [])):
                    starts.setdefault(key, record)
        if not starts:
            return
        now = self._clock()
        self._pg.create_sessions(
            [(k, r.product, r.heartbeat_interval or None, now) for k, r in starts.items()]
        )
        live = self._pg.sessions(list(starts))
        for key in starts:
            self._fresh[key] = live[key].sid
            self._sessions.pop(key, None)

    @staticmethod
    def _keys(request: _Request) -> set[str]:
        return {r.session_id for r in request.records} | {
            b.session_id for b in request.result_columns
        }

    def _refresh(self, keys: list[str]) -> None:
        """Bring cached sessions up to date with what other servers changed."""
        cached = [key for key in dict.fromkeys(keys) if key in self._sessions]
        if not cached:
            return
        for key, live in self._pg.sessions(cached).items():
            entry = self._sessions[key]
            entry.state, entry.state_seq = live.state, live.state_seq
            entry.ended_at, entry.hung, entry.hung_seq = live.ended_at, live.hung, live.hung_seq
            entry.heartbeat_interval = live.heartbeat_interval
            entry.last_seen = max(entry.last_seen, live.last_seen)
            entry.updated_at = max(entry.updated_at, live.updated_at)
            entry.in_progress = live.in_progress
            entry.has_run, entry.run_finished = live.has_run, live.run_finished

    def _release(self, failed: list[_Request]) -> None:
        """Give back the claims of requests that stored nothing."""
        keys = [
            (k, lo, hi)
            for r in failed
            for k, s in self._spans.get(id(r), {}).items()
            for lo, hi in s
        ]
        if not keys:
            return
        try:
            self._pg.db.execute(
                "DELETE FROM datacat.ingest_claims c"
                " USING unnest(%s::uuid[], %s::int8[], %s::int8[]) AS w(s, lo, hi)"
                " WHERE c.owner = %s AND c.session_id = w.s"
                " AND c.seqs <@ int8range(w.lo, w.hi, '[]')",
                [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], self._pg.owner],
            )
        except Exception as exc:  # they are taken over when this server is gone
            log.warning("claims of failed requests were not given back: %s", _said(exc))

    def _pg_failed(self, exc: BaseException) -> None:
        log.warning("the lake's catalog failed: %s", _said(exc))
        try:
            self._pg.reconnect()
        except Exception as again:
            log.warning("reconnecting to the lake's catalog failed: %s", _said(again))

    # -- staging ---------------------------------------------------------------------

    def _new_staging(self) -> Staging:
        staging = super()._new_staging()
        staging.sids = dict(self._fresh)
        return staging

    def _stage(
        self, requests: list[_Request]
    ) -> tuple[Staging, list[tuple[_Request, Any]], list[tuple[_Request, Exception]]]:
        staging, results, failed = super()._stage(requests)
        logged: Spans = {}
        for request, _ in results:
            for key, spans in self._spans.get(id(request), {}).items():
                logged.setdefault(key, []).extend(spans)
        self._logged = {key: pg.runs(_expand(spans)) for key, spans in logged.items()}
        return staging, results, failed

    def _session(self, key: str) -> SessionEntry | None:
        if key in self._fresh:
            return None  # its start is staged anew, with the sid it was given
        return super()._session(key)

    def _load_session(self, key: str) -> SessionEntry | None:
        live = self._pg.sessions([key]).get(key)
        if live is None:
            return None
        rows = self._cur.execute(
            "SELECT lo, hi FROM ingest_log WHERE session_id = CAST(? AS UUID) AND lo >= 0",
            [key],
        ).fetchall()
        return SessionEntry(
            sid=live.sid,
            id=key,
            product=live.product,
            state=live.state,
            ended_at=live.ended_at,
            hung=live.hung,
            hung_seq=live.hung_seq,
            heartbeat_interval=live.heartbeat_interval,
            last_seen=live.last_seen,
            updated_at=live.updated_at,
            in_progress=live.in_progress,
            seqs=_seqset([(int(lo), int(hi)) for lo, hi in rows]),
            has_run=live.has_run,
            run_finished=live.run_finished,
            state_seq=live.state_seq,
        )

    # -- ids -------------------------------------------------------------------------

    def _assign_test_ids(
        self, blocks: list[ResultBlock]
    ) -> dict[tuple[str, str], tuple[int, ResultBlock, int]]:
        """Ids from PostgreSQL for tests this server has not written a row of: each
        gets a row in this commit (the ``tests`` view keeps one per id)."""
        missing: dict[tuple[str, str], tuple[ResultBlock, int]] = {}
        known = self._test_ids
        for block in blocks:
            project = block.project
            for index, nodeid in enumerate(block.columns["nodeid"]):
                key = (project, nodeid)
                if key not in known and key not in missing:
                    missing[key] = (block, index)
        if not missing:
            return {}
        ids = self._pg.test_ids(list(missing))
        return {key: (ids[key], block, index) for key, (block, index) in missing.items()}

    # -- the transaction ---------------------------------------------------------------

    def _commit(self, staging: Staging) -> None:
        blocks = build.gather_results(staging)
        new_tests = self._assign_test_ids(blocks)
        touched = staging.hard_dirty | staging.soft_dirty | staging.new_sessions.keys()
        entries = [staging.sessions[key] for key in touched if key in staging.sessions]
        patches = [
            (sid, seq, float(record.timestamp), record.state)
            for sid, seq, record in staging.rows.get(tables.STATE_UPDATES.name, [])
        ]
        # PostgreSQL first: applying these records again (a retry) changes nothing there.
        states = self._pg.update_sessions(entries, patches, merge=deep_merge)
        for entry in entries:
            if entry.sid in states:
                entry.state, entry.state_seq = states[entry.sid]
        started = time.perf_counter()
        with self._pg.gate():
            if not self._pg.still_mine(self._logged):
                raise StoreError("another server took over this batch's records; retry")
            # Stamped just before the commit: the leader folds only results stamped
            # more than `store.FOLD_LAG` seconds ago, so none can arrive behind it.
            stored_at = max(self._stored_at + 1, round(self._clock() * 1_000_000))
            self._lake_commit(lambda: self._append(staging, blocks, new_tests, stored_at))
        seconds = time.perf_counter() - started
        self._commits += 1
        if self._crash_after is not None and self._commits >= self._crash_after:
            _die()
        self._stored_at = stored_at
        for key, entry in staging.sessions.items():
            self._remember(key, entry)
        self._test_ids.update((key, test_id) for key, (test_id, _, _) in new_tests.items())
        if len(self._test_ids) > self._test_cache_size:
            self._test_ids.clear()
        if self.observer is not None:
            try:
                self.observer(sum(len(block) for block in blocks), seconds)
            except Exception:  # committed all the same: never retry it as failed
                log.exception("commit observer failed")

    def _append(
        self,
        staging: Staging,
        blocks: list[ResultBlock],
        new_tests: dict[tuple[str, str], tuple[int, ResultBlock, int]],
        stored_at: int,
    ) -> None:
        cur = self._cur
        self._append_new(staging, blocks, new_tests, stored_at)
        if staging.run_finishes:
            tables.insert(cur, ddl.RUN_FINISHES, _finishes(staging.run_finishes))
        if self._logged:
            tables.insert(cur, ddl.INGEST_LOG, _ingest_log(self._logged))

    def _lake_commit(self, body: Callable[[], None]) -> None:
        """Run ``body`` in one lake transaction, again when DuckLake reports a conflict it
        did not retry itself (another server's DELETE or UPDATE of the same table, or its
        own retries running out)."""
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                with transaction(self._cur):
                    body()
                return
            except duckdb.TransactionException as exc:
                with contextlib.suppress(duckdb.Error):
                    self._cur.execute("ROLLBACK")
                if attempt + 1 == COMMIT_ATTEMPTS:
                    raise
                log.info("lake commit conflicted, again: %s", _said(exc))
                time.sleep(0.05 * 2**attempt)

    def _run_task(self, task: Any) -> None:
        """Maintenance (quarantine changes, retention) may conflict with another
        server's: its ``fn`` runs again, up to `COMMIT_ATTEMPTS` times."""
        fn = task.fn
        if task.transaction:

            def again(cur: duckdb.DuckDBPyConnection) -> Any:
                result: list[Any] = []
                self._lake_commit(lambda: result.append(fn(cur)))
                return result[0]

            task.fn, task.transaction = again, False
        super()._run_task(task)

    @property
    def authority(self) -> pg.Authority:
        """This server's PostgreSQL connection (use it in the writer's thread only)."""
        return self._pg

    def _update_sessions(self, entries: list[SessionEntry], *, state_dirty: set[str]) -> None:
        """Soft fields go to PostgreSQL with every commit here: nothing is left to flush."""
        if entries:
            self._pg.update_sessions(entries, [], merge=deep_merge)

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        self._pg.close()


def _expand(spans: list[tuple[int, int]]) -> list[int]:
    return [seq for lo, hi in spans for seq in range(lo, hi + 1)]


def _overlap(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> bool:
    return any(lo <= y_hi and x_lo <= hi for lo, hi in a for x_lo, y_hi in b)


def _finishes(finishes: list[tuple[int, wire.RunFinish]]) -> pa.Table:
    records = [record for _, record in finishes]
    values: dict[str, Any] = {
        "sid": [sid for sid, _ in finishes],
        "finished_at": build.timestamps(r.timestamp for r in records),
        "exit_status": [r.exit_status for r in records],
        "status": [r.status for r in records],
        "reason": [r.reason for r in records],
        "counts": [msgspec.json.encode(r.counts).decode() for r in records],
        "duration": [r.duration for r in records],
    }
    return ddl.RUN_FINISHES.arrow(values, len(records))


def _ingest_log(logged: Spans) -> pa.Table:
    keys = [(key, lo, hi) for key, spans in logged.items() for lo, hi in spans]
    return ddl.INGEST_LOG.arrow(
        {
            "session_id": [k[0] for k in keys],
            "lo": pa.array([k[1] for k in keys], pa.int64()),
            "hi": pc.cast(pa.array([k[2] for k in keys], pa.int64()), pa.int64()),
        },
        len(keys),
    )


def _said(exc: BaseException) -> str:
    return redact(str(exc))


def _die() -> None:
    import os
    import signal

    log.error("%s: dying after a lake commit, before answering (test hook)", CRASH_AFTER_COMMIT)
    os.kill(os.getpid(), signal.SIGKILL)
