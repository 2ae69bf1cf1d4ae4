"""People's SQL, run outside the server process: worker processes with operating-system
limits over a read-only view of the data.

- `pool`: `SqlPool`, the workers and the queue in front of them (asyncio, no threads),
  and `open_sql_pool`, the pool the settings describe;
- `process`: a worker process seen from the server (start it, its pipes, its death);
- `worker`: the worker process itself (``python -m datacat_server.sqlpool.worker``);
- `protocol`: the msgpack messages on the workers' pipes;
- `source`: `ViewSource`, what workers read; `SnapshotSource` copies the embedded
  database into snapshot files.

This package imports nothing on purpose: a worker imports `protocol` and
`datacat_server.queries.sql` only, not the server. See ARCHITECTURE.md ("People's
SQL") and SECURITY.md.
"""
