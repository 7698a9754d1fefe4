-- Two indexes that others cover: every row written to their table paid for them (a push writes
-- hundreds of rows, and each index costs PostgreSQL a few microseconds a row) for lookups the
-- covering index serves as well.
-- costs_show (owner, show_id) is the prefix of costs_show_created (owner, show_id, created_at, id).
DROP INDEX IF EXISTS costs_show;
-- inventory_sku (owner, sku): the lookup by sku (projections/tables.py, load_live_by_sku) now
-- compares sku COLLATE "C", which inventory_sku_c (owner, sku COLLATE "C", id) serves. Equality
-- is byte equality under any deterministic collation, so the same rows match.
DROP INDEX IF EXISTS inventory_sku;
