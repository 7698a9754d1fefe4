-- The four read tables. Each row: the public JSON a pull sends (body), the projector's
-- private state (hidden), and the columns that filters and reference checks look up.
-- sync_pos: the position of the last event that changed the row; pulls read by it.

CREATE TABLE shows (
    owner       UUID NOT NULL,
    id          UUID NOT NULL,
    version     INTEGER NOT NULL,
    sync_pos    INTEGER NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    deleted_at  TIMESTAMPTZ,
    status      TEXT,
    date        TEXT,
    body        TEXT NOT NULL,
    hidden      TEXT NOT NULL,
    PRIMARY KEY (owner, id)
) WITHOUT ROWID;
CREATE INDEX shows_sync ON shows (owner, sync_pos);

CREATE TABLE costs (
    owner       UUID NOT NULL,
    id          UUID NOT NULL,
    version     INTEGER NOT NULL,
    sync_pos    INTEGER NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    deleted_at  TIMESTAMPTZ,
    show_id     UUID,
    body        TEXT NOT NULL,
    hidden      TEXT NOT NULL,
    PRIMARY KEY (owner, id)
) WITHOUT ROWID;
CREATE INDEX costs_sync ON costs (owner, sync_pos);

CREATE TABLE workouts (
    owner       UUID NOT NULL,
    id          UUID NOT NULL,
    version     INTEGER NOT NULL,
    sync_pos    INTEGER NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    deleted_at  TIMESTAMPTZ,
    date        TEXT,
    body        TEXT NOT NULL,
    hidden      TEXT NOT NULL,
    PRIMARY KEY (owner, id)
) WITHOUT ROWID;
CREATE INDEX workouts_sync ON workouts (owner, sync_pos);

CREATE TABLE inventory (
    owner       UUID NOT NULL,
    id          UUID NOT NULL,
    version     INTEGER NOT NULL,
    sync_pos    INTEGER NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    deleted_at  TIMESTAMPTZ,
    sku         TEXT,
    low_stock   BOOLEAN,
    body        TEXT NOT NULL,
    hidden      TEXT NOT NULL,
    PRIMARY KEY (owner, id)
) WITHOUT ROWID;
CREATE INDEX inventory_sync ON inventory (owner, sync_pos);

CREATE INDEX shows_date ON shows (owner, date, id);
CREATE INDEX costs_show ON costs (owner, show_id);
CREATE INDEX workouts_date ON workouts (owner, date, id);
CREATE INDEX inventory_sku ON inventory (owner, sku);
