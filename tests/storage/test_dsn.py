"""DSNs in messages: ``mask_dsn`` hides every password, ``check_dsn`` turns a DSN asyncpg cannot read as
meant into a one-line usage error, and ``cryptoarb db`` never prints a password. No server needed."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import typer
from hypothesis import assume, example, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from cryptoarb.storage import StoreError
from cryptoarb.storage.cli import db_app
from cryptoarb.storage.postgres import PostgresStore, check_dsn, mask_dsn, pg_unavailable

MASK = "********"
SECRET = "SECRETSECRET123"
users = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.-", min_size=1, max_size=12)
passwords = st.text(min_size=1, max_size=40)


# -- mask_dsn: properties ---------------------------------------------------------------------------


@given(user=users, password=passwords)
@example(user="bob", password="SECRET@SECRET123")
@example(user="u", password="p:a/s?s#w@o@rd")
def test_a_raw_userinfo_password_is_masked_whole(user: str, password: str) -> None:
    # Anything up to the last "@" is the password, whatever it holds, short of something that reads as
    # a query field ("?password=", "&x=") to hunt for in the query.
    assume(not re.search(r"[?&][^=&#?]*=", password))
    for tail in ("", "?sslmode=require&application_name=x"):
        dsn = f"postgresql://{user}:{password}@db.example:5432/prod{tail}"
        assert mask_dsn(dsn) == f"postgresql://{user}:{MASK}@db.example:5432/prod{tail}"


@given(user=users, password=passwords)
def test_a_percent_encoded_userinfo_password_is_masked(user: str, password: str) -> None:
    dsn = f"postgres://{user}:{quote(password, safe='')}@[::1]:5432/prod"
    assert mask_dsn(dsn) == f"postgres://{user}:{MASK}@[::1]:5432/prod"


@given(password=st.text(max_size=40), key=st.sampled_from(["password", "sslpassword", "PASSWORD", "%70assword"]))
@example(password="p@ss", key="password")
def test_a_query_password_is_masked(password: str, key: str) -> None:
    for encoded in (quote(password, safe=""), quote_plus(password)):
        dsn = f"postgresql://bob@db.example:5432/prod?sslmode=require&{key}={encoded}&application_name=x"
        assert mask_dsn(dsn) == f"postgresql://bob@db.example:5432/prod?sslmode=require&{key}={MASK}&application_name=x"
    # "@", "?", "#", "/" and ":" are legal raw in a query; a raw "&" is too, unless "&name=" follows
    assume(not re.search(r"&[^=&#?]*=", password))
    dsn = f"postgresql://bob:pw@db.example/prod?{key}={password}"
    assert mask_dsn(dsn) == f"postgresql://bob:{MASK}@db.example/prod?{key}={MASK}"


def _libpq_quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _libpq_bare(value: str) -> str:
    return re.sub(r"([\s\\'])", r"\\\1", value)


@given(password=passwords, quoting=st.sampled_from([_libpq_quoted, _libpq_bare]),
       key=st.sampled_from(["password", "sslpassword", "password = "]))
@example(password=SECRET, quoting=_libpq_bare, key="password")
@example(password="it's a 'secret' \\ ", quoting=_libpq_quoted, key="password")
def test_a_keyword_form_password_is_masked(password: str, quoting, key: str) -> None:
    key = key if key.endswith(" ") else key + "="
    dsn = f"host=db.example port=5432 {key}{quoting(password)} dbname=prod"
    assert mask_dsn(dsn) == f"host=db.example port=5432 {key}{MASK} dbname=prod"
    assert mask_dsn(f"{key}{quoting(password)}") == f"{key}{MASK}"


def test_an_unterminated_quoted_password_is_masked_to_the_end() -> None:
    assert mask_dsn("host=h password='abc def dbname=x") == f"host=h password={MASK}"


@given(dsn=st.text(max_size=80))
def test_check_dsn_fails_only_with_a_masked_store_error(dsn: str) -> None:
    mask_dsn(dsn)  # never raises
    try:
        check_dsn(dsn)
    except StoreError as exc:
        shown = mask_dsn(dsn) if re.match(r"[\x00-\x20]*postgres(ql)?://", dsn, re.IGNORECASE) else "(not shown)"
        assert str(exc).startswith(f"invalid PostgreSQL DSN {shown}: ")  # what is not a URL is not echoed at all
        assert "\n" not in str(exc).removeprefix(f"invalid PostgreSQL DSN {shown}: ")


# -- check_dsn ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dsn", [
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgres://u:p%40ss%2Fw%3Ford@db.example/prod?sslmode=require",
    "postgresql://u:pw@[::1]:5432,other:5433/prod",
    "postgresql:///prod?host=/var/run/postgresql",
    "postgresql://u@db.example/prod?password=p@ss&application_name=a@b",
])
def test_check_dsn_accepts_what_asyncpg_reads(dsn: str) -> None:
    check_dsn(dsn)


@pytest.mark.parametrize(("dsn", "reason"), [
    (f"host=127.0.0.1 port=1 password={SECRET}", "postgresql://"),
    (f"postgresql://bob:SECRET@{SECRET}@127.0.0.1:1/x", "%40"),
    (f"postgresql://u:{SECRET}@[bad", "not a valid URL"),
    (f"postgresql://u:{SECRET[:6]}/{SECRET[6:]}@127.0.0.1/x", "%2F"),
    (f"postgresql://u:{SECRET}@db.example:54x2/x", "port"),
    (f"postgresql://u@db.example/x?password={SECRET}&{SECRET}", "query"),
    (f"postgresql:u:{SECRET}@db.example", "postgresql://"),
])
def test_check_dsn_names_the_problem_without_the_password(dsn: str, reason: str) -> None:
    with pytest.raises(StoreError) as caught:
        check_dsn(dsn)
    assert reason in str(caught.value) and "SECRET" not in str(caught.value)
    assert (MASK if dsn.startswith("postgresql://") else "(not shown)") in str(caught.value)


async def test_opening_or_probing_a_bad_dsn_says_so_without_the_password() -> None:
    dsn = f"postgresql://u:{SECRET}@[bad"
    with pytest.raises(StoreError, match="invalid PostgreSQL DSN") as caught:
        await PostgresStore(dsn).open()
    assert "SECRET" not in str(caught.value)
    reason = await pg_unavailable(dsn)
    assert reason is not None and "SECRET" not in reason


# -- cryptoarb db ---------------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in ("CRYPTOARB_DATA_DIR", "CRYPTOARB_DB_DSN", "CRYPTOARB_SECRETS__DB_DSN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./cryptoarb.toml
    app = typer.Typer()
    app.add_typer(db_app, name="db")

    def run(*args: str):
        return CliRunner().invoke(app, ["db", *args])

    return run


@pytest.mark.parametrize(("dsn", "code"), [
    (f"postgresql://bob@127.0.0.1:1/x?password={SECRET}", 1),  # well-formed: the connection fails
    (f"host=127.0.0.1 port=1 password={SECRET}", 2),
    (f"postgresql://bob:SECRET@{SECRET}@127.0.0.1:1/x", 2),
    (f"postgresql://u:{SECRET}@[bad", 2),
])
def test_db_commands_never_print_a_password(db, dsn: str, code: int) -> None:
    for command in ("stats", "init", "migrate"):
        result = db(command, "--dsn", dsn)
        assert result.exit_code == code, (command, result.output, result.exception)
        assert "SECRET" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1
        assert (MASK if dsn.startswith("postgresql://") else "(not shown)") in result.stderr


def test_db_stats_on_a_file_that_is_not_sqlite_names_the_file(db, tmp_path: Path) -> None:
    path = tmp_path / "notdb.sqlite"
    path.write_bytes(b"this is not a database, " * 10)
    for command in ("stats", "migrate", "init"):
        result = db(command, "--sqlite", str(path))
        assert result.exit_code == 1, (command, result.output, result.exception)
        assert result.stderr.strip() == f"error: {path}: file is not a database"
    assert path.read_bytes() == b"this is not a database, " * 10
    sqlite3.connect(tmp_path / "ok.sqlite").close()  # an empty file is an empty database: no error
    assert db("stats", "--sqlite", str(tmp_path / "ok.sqlite")).exit_code == 0
