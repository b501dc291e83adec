"""cassandra-driver round trip against ember-cql, run by tests/python_clients.rs.

usage: driver_roundtrip.py HOST PORT write|read [ROWS]

write: creates pyks.items, inserts ROWS rows with a prepared statement through
       execute_concurrent_with_args, then reads them back (fetch_size 1000) and checks them.
read:  only reads and checks (after the server was killed and restarted).

The Cluster uses the driver's defaults apart from the contact point and port: it starts at
protocol v5 (and DSE versions) and must negotiate down to v4. Exits non-zero with a message on
any mismatch; prints "inserted N" and "read N ok" as summary lines.
"""

import datetime
import sys
import uuid

from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.query import SimpleStatement

EPOCH = datetime.datetime(2024, 1, 1)


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def expected(i):
    """The row for id i: (bucket, id, name, score, tags, payload, created, uid)."""
    return (
        i % 97,
        i,
        "name-%d ünï'q \"x\"" % i,
        i * 1.5,
        {"t%d" % (i % 3), "all"},
        bytes((i * 7 + j) % 256 for j in range(i % 50)),
        EPOCH + datetime.timedelta(seconds=i),
        uuid.UUID(int=i + 1),
    )


def check_all(session, rows):
    stmt = SimpleStatement(
        "SELECT bucket, id, name, score, tags, payload, created, uid FROM pyks.items",
        fetch_size=1000,
    )
    result = session.execute(stmt)
    seen = set()
    pages = 1
    n = 0
    while True:
        for r in result.current_rows:
            n += 1
            got = (r.bucket, r.id, r.name, r.score, set(r.tags or ()), bytes(r.payload or b""),
                   r.created, r.uid)
            if r.id in seen:
                fail("id %d returned twice" % r.id)
            seen.add(r.id)
            if not 0 <= r.id < rows:
                fail("unexpected id %d" % r.id)
            if got != expected(r.id):
                fail("row %d: got %r, expected %r" % (r.id, got, expected(r.id)))
        if not result.has_more_pages:
            break
        if len(result.current_rows) != 1000:
            fail("page %d has %d rows, expected 1000" % (pages, len(result.current_rows)))
        result.fetch_next_page()
        pages += 1
    if n != rows:
        fail("read %d rows, expected %d" % (n, rows))
    want_pages = (rows + 999) // 1000
    if pages not in (want_pages, want_pages + 1):
        fail("read %d pages, expected %d" % (pages, want_pages))
    count = session.execute("SELECT COUNT(*) FROM pyks.items").one()[0]
    if count != rows:
        fail("COUNT(*) = %d, expected %d" % (count, rows))
    # Token-aware single-partition read through a prepared statement.
    sel = session.prepare("SELECT id, name FROM pyks.items WHERE bucket = ? AND id = ?")
    for i in (0, rows // 2, rows - 1):
        r = session.execute(sel, (i % 97, i)).one()
        if r is None or r.name != expected(i)[2]:
            fail("prepared point read of %d returned %r" % (i, r))
    print("read %d ok (%d pages)" % (n, pages), flush=True)


def main():
    if len(sys.argv) < 4:
        fail("usage: driver_roundtrip.py HOST PORT write|read [ROWS]")
    host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rows = int(sys.argv[4]) if len(sys.argv) > 4 else 10000
    cluster = Cluster([host], port=port)
    session = cluster.connect()
    print("protocol_version %d" % cluster.protocol_version, flush=True)
    if cluster.protocol_version != 4:
        fail("expected the driver to settle on protocol v4, got %d" % cluster.protocol_version)
    hosts = cluster.metadata.all_hosts()
    if len(hosts) != 1:
        fail("expected one host in the driver's metadata, got %r" % hosts)

    if mode == "write":
        session.execute(
            "CREATE KEYSPACE pyks WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.execute(
            "CREATE TABLE pyks.items (bucket int, id int, name text, score double, "
            "tags set<text>, payload blob, created timestamp, uid uuid, "
            "PRIMARY KEY ((bucket), id))"
        )
        if "items" not in cluster.metadata.keyspaces["pyks"].tables:
            fail("driver metadata does not show pyks.items after CREATE TABLE")
        ins = session.prepare(
            "INSERT INTO pyks.items (bucket, id, name, score, tags, payload, created, uid) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        results = execute_concurrent_with_args(
            session, ins, [expected(i) for i in range(rows)], concurrency=128,
            raise_on_first_error=False,
        )
        failed = [r for ok, r in results if not ok]
        if failed:
            fail("%d inserts failed, first: %r" % (len(failed), failed[0]))
        print("inserted %d" % len(results), flush=True)
    elif mode != "read":
        fail("unknown mode " + mode)

    check_all(session, rows)
    cluster.shutdown()


if __name__ == "__main__":
    main()
