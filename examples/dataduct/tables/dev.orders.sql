-- the staging table the TSV loads into (Redshift clauses are dropped on PostgreSQL/DuckDB)
CREATE TABLE dev.orders (
    id INTEGER PRIMARY KEY,
    note VARCHAR(255),
    amount DOUBLE PRECISION ENCODE raw
) DISTSTYLE ALL SORTKEY (id);
