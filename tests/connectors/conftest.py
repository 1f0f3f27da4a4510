from tests.pipelines.conftest import EDGE_ROWS, mariadb_db, pg_db

__all__ = ["EDGE_ROWS", "mariadb_db", "pg_db"]
