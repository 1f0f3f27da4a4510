from __future__ import annotations

from pathlib import Path

import pytest

from freight.connectors.connections import Connection, expand, load_connections, redact
from freight.errors import UserError


def test_connections_from_toml_with_env_secrets(tmp_path: Path) -> None:
    cfg = tmp_path / "freight.toml"
    cfg.write_text(
        '[connections.shop]\nkind = "mariadb"\nurl = "mysql://etl:${SHOP_PW}@db:3306/shop"\n'
        '[connections.lake]\nkind = "duckdb"\npath = "lake.duckdb"\n'
    )
    conns = load_connections(cfg, home=tmp_path / "home")
    shop = conns.get("shop")
    assert shop.url == "mysql://etl:${SHOP_PW}@db:3306/shop"  # kept unexpanded until used
    assert shop.resolved_url({"SHOP_PW": "s3cr3t-pw"}) == "mysql://etl:s3cr3t-pw@db:3306/shop"
    assert conns.get("lake").path == str(tmp_path / "lake.duckdb")
    assert conns.warehouse(None).path == str((tmp_path / "home" / "warehouse.duckdb").resolve())
    # once expanded, the secret is scrubbed from any text
    assert redact("could not log in with s3cr3t-pw to db") == "could not log in with *** to db"
    assert "s3cr3t-pw" not in shop.describe()


def test_missing_env_var_and_plain_password_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        expand("mysql://u:${NOPE_NOT_SET}@h/db", {}, where="connections.x.url")
    assert (
        str(err.value)
        == "connections.x.url: environment variable NOPE_NOT_SET is not set (export NOPE_NOT_SET=...)"
    )
    cfg = tmp_path / "freight.toml"
    cfg.write_text('[connections.x]\nkind = "postgres"\nurl = "postgresql://u:hunter2@h/db"\n')
    with pytest.raises(UserError) as err:
        load_connections(cfg, home=tmp_path)
    assert "hunter2" not in str(err.value)
    assert str(err.value).startswith(f"{cfg}: connections.x.url: a password written in the config file")


def test_unknown_connection_and_kind(tmp_path: Path) -> None:
    cfg = tmp_path / "freight.toml"
    cfg.write_text('[connections.x]\nkind = "oracle"\nurl = "x://h"\n')
    with pytest.raises(UserError, match="unknown kind 'oracle'"):
        load_connections(cfg, home=tmp_path)
    conns = load_connections(None, home=tmp_path)
    with pytest.raises(UserError, match="unknown connection 'shop'"):
        conns.get("shop", where="steps.a.connection")
    with pytest.raises(UserError, match="is a mariadb source, not a warehouse"):
        conns.items["src"] = Connection("src", "mariadb", url="mysql://h/db")
        conns.warehouse("src")


def test_redact_masks_url_passwords_even_when_not_expanded() -> None:
    assert (
        redact("connect postgresql://bob:pa55@host/db failed")
        == "connect postgresql://bob:***@host/db failed"
    )


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b'[connections.w]\nkind = "duckdb"\n', "connections.w.path: a duckdb connection needs `path`"),
        (
            b'[connections.w]\nkind = "duckdb"\npath = 5\n',
            "connections.w.path: a duckdb connection needs `path`",
        ),
        (b"\xff\xfe", "not UTF-8 text (give a TOML file)"),
    ],
)
def test_a_bad_connections_file_is_one_error(tmp_path: Path, content: bytes, said: str) -> None:
    cfg = tmp_path / "freight.toml"
    cfg.write_bytes(content)
    with pytest.raises(UserError) as err:
        load_connections(cfg, home=tmp_path)
    assert str(err.value).startswith(f"{cfg}: {said}"), str(err.value)
