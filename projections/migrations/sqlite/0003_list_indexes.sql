-- Keyset pagination of the REST lists (projections/listing.py): every sort order the lists
-- offer, with the id as tie-breaker, so that a page is one index range scan.
-- SQLite compares text byte-wise (BINARY), the order PostgreSQL gets with COLLATE "C".
CREATE INDEX shows_created ON shows (owner, created_at, id);
CREATE INDEX shows_status_date ON shows (owner, status, date, id);
CREATE INDEX costs_created ON costs (owner, created_at, id);
CREATE INDEX costs_show_created ON costs (owner, show_id, created_at, id);
CREATE INDEX workouts_created ON workouts (owner, created_at, id);
CREATE INDEX inventory_created ON inventory (owner, created_at, id);
CREATE INDEX inventory_sku_id ON inventory (owner, sku, id);
