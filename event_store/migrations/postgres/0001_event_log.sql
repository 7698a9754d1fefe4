-- The append-only event log and the idempotency keys that make retried appends harmless.
-- tx: the writing transaction's id; the global feed reads below pg_snapshot_xmin (store.py).
CREATE SEQUENCE events_position_seq AS bigint;
CREATE TABLE events (
    position        bigint PRIMARY KEY DEFAULT nextval('events_position_seq'),
    tx              bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    owner           uuid NOT NULL,
    stream_type     text NOT NULL,
    stream_id       uuid NOT NULL,
    version         integer NOT NULL CHECK (version >= 1),
    type            text NOT NULL,
    schema_version  smallint NOT NULL CHECK (schema_version >= 1),
    data            json NOT NULL,
    metadata        json NOT NULL,
    recorded_at     timestamptz NOT NULL
);
ALTER SEQUENCE events_position_seq OWNED BY events.position;
CREATE UNIQUE INDEX events_stream_version ON events (owner, stream_type, stream_id, version);
CREATE INDEX events_owner_position ON events (owner, position);
CREATE INDEX events_feed ON events (tx, position);

CREATE TABLE idempotency_keys (
    owner        uuid NOT NULL,
    key          text NOT NULL,
    outcome      bytea NOT NULL,
    recorded_at  timestamptz NOT NULL,
    PRIMARY KEY (owner, key)
);
