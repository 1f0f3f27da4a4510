CREATE TABLE dev.orders_report (
    id INTEGER,
    note VARCHAR(255),
    amount DOUBLE PRECISION,
    PRIMARY KEY (id)
);
