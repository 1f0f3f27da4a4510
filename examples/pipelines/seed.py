"""Seed data for the example pipelines.

python examples/pipelines/seed.py             # CSV files in examples/pipelines/data/
python examples/pipelines/seed.py --mariadb   # also a `shop` database in the local MariaDB
"""

from __future__ import annotations

import argparse
from pathlib import Path

from freight.pipelines.demo import write_seed_data

HERE = Path(__file__).resolve().parent


def seed_mariadb(database: str, rows: int) -> None:
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
        cur.execute(f"USE {database}")
        cur.execute("DROP TABLE IF EXISTS orders")
        cur.execute(
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id INT, amount DOUBLE, status VARCHAR(10), "
            "note VARCHAR(100) NULL, placed DATETIME)"
        )
        cur.execute(
            f"INSERT INTO orders SELECT seq, seq % 200 + 1, seq / 7.0e0, ELT(1 + seq % 4, 'new', 'paid', "
            "'shipped', 'returned'), CASE seq % 5 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'NULL' "
            "ELSE CONCAT('tab\\t', seq) END, TIMESTAMP '2024-01-01' + INTERVAL seq MINUTE "
            f"FROM seq_1_to_{rows}"
        )
    conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--mariadb", action="store_true")
    args = parser.parse_args()
    for path in write_seed_data(HERE / "data", orders=args.rows):
        print(path)
    if args.mariadb:
        seed_mariadb("shop", args.rows)
        print("mariadb: shop.orders")
