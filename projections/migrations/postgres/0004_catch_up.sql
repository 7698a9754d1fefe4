-- Catch-up projections (projections/runner.py): read models that are not written inline by
-- push but follow the global feed. Each keeps its place in the feed (checkpoint_tx,
-- checkpoint_position, written in the same transaction as its rows, so no event is applied
-- twice), and a lease that a long job on a projection (a rebuild) holds across transactions.
ALTER TABLE projection_state ADD COLUMN checkpoint_tx bigint NOT NULL DEFAULT 0;
ALTER TABLE projection_state ADD COLUMN checkpoint_position bigint NOT NULL DEFAULT 0;
ALTER TABLE projection_state ADD COLUMN lease_holder text;
ALTER TABLE projection_state ADD COLUMN lease_until timestamptz;

-- Daily sales per product (projections/sales.py): units, revenue and number of sales by UTC
-- day of sold_at. A report, not needed to decide any push: so it is caught up, not inline.
CREATE TABLE sales_daily (
    owner       uuid NOT NULL,
    product_id  uuid NOT NULL,
    day         text NOT NULL,
    units       bigint NOT NULL,
    revenue     text NOT NULL,
    sales       integer NOT NULL,
    PRIMARY KEY (owner, day, product_id)
);
INSERT INTO projection_state (name, definition, epoch) VALUES ('sales_daily', 1, 1);
