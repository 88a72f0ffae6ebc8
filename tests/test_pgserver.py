"""The test suite's own PostgreSQL server (``tests/pgserver.py``): it starts, psycopg connects
over TCP on 127.0.0.1, and each test's database is its own."""

from __future__ import annotations

from urllib.parse import urlsplit

import psycopg
from pgserver import HOST, PgServer


def test_the_server_answers_on_localhost(pg_server: PgServer) -> None:
    with psycopg.connect(pg_server.url) as con:
        version = con.execute("SHOW server_version").fetchone()
        address = con.execute("SELECT host(inet_server_addr()), inet_server_port()").fetchone()
        fsync = con.execute("SHOW fsync").fetchone()
    assert version is not None and int(version[0].split(".")[0]) >= 13
    assert address == (HOST, pg_server.port)
    assert fsync == ("off",)


def test_pg_url_is_a_fresh_empty_database(pg_url: str, pg_server: PgServer) -> None:
    parts = urlsplit(pg_url)
    assert (parts.scheme, parts.hostname, parts.port) == ("postgresql", HOST, pg_server.port)
    with psycopg.connect(pg_url) as con:
        tables = con.execute("SELECT count(*) FROM information_schema.tables"
                             " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                             ).fetchone()
    assert tables == (0,)


def test_two_databases_are_independent(pg_server: PgServer) -> None:
    first, second = pg_server.database(), pg_server.database()
    assert first != second
    with psycopg.connect(first) as con:
        con.execute("CREATE TABLE t (x int)")
        con.execute("INSERT INTO t VALUES (1), (2)")
    with psycopg.connect(second) as con:
        con.execute("CREATE TABLE t (x int)")  # no clash: another database
        con.execute("INSERT INTO t VALUES (7)")
    with psycopg.connect(first) as con:
        assert con.execute("SELECT sum(x) FROM t").fetchone() == (3,)
    with psycopg.connect(second) as con:
        assert con.execute("SELECT sum(x) FROM t").fetchone() == (7,)


def test_a_second_server_gets_its_own_port_and_stops_cleanly() -> None:
    with PgServer() as other:
        url = other.database()
        with psycopg.connect(url) as con:
            assert con.execute("SELECT 1").fetchone() == (1,)
        base = other.base
    assert not base.exists()
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.OperationalError:
        pass
    else:
        raise AssertionError(f"the stopped server still answers at {url}")
