-- The two text columns that a push looks up and indexes hundreds of times (an idempotency key per
-- op; the stream type of every event, in the stream-version index) compare byte by byte. Under a
-- database's default collation (C.UTF-8, en_US.UTF-8…) every comparison goes through the
-- locale's strcoll: 500 key inserts and 500 key lookups, as a push makes them, took 6.8 ms of
-- database time against 5.3 ms byte by byte (psql, five alternations). Equality is byte
-- equality under any deterministic collation, so every lookup finds what it found before; only
-- the order of non-ASCII text, which nothing here sorts by, changes. The table is not
-- rewritten; the two indexes are rebuilt.
ALTER TABLE idempotency_keys ALTER COLUMN key TYPE text COLLATE "C";
ALTER TABLE events ALTER COLUMN stream_type TYPE text COLLATE "C";
