CREATE TABLE dev.orders_copy (
    id INTEGER PRIMARY KEY,
    note VARCHAR(100),
    amount DOUBLE PRECISION
);
