-- The append-only event log and the idempotency keys that make retried appends harmless.
CREATE TABLE events (
    position        INTEGER PRIMARY KEY,
    tx              INTEGER NOT NULL,
    owner           UUID NOT NULL,
    stream_type     TEXT NOT NULL,
    stream_id       UUID NOT NULL,
    version         INTEGER NOT NULL CHECK (version >= 1),
    type            TEXT NOT NULL,
    schema_version  INTEGER NOT NULL CHECK (schema_version >= 1),
    data            TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX events_stream_version ON events (owner, stream_type, stream_id, version);
CREATE INDEX events_owner_position ON events (owner, position);

CREATE TABLE idempotency_keys (
    owner        UUID NOT NULL,
    key          TEXT NOT NULL,
    outcome      BLOB NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (owner, key)
) WITHOUT ROWID;
