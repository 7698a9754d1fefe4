-- The four read tables. Each row: the public JSON a pull sends (body), the projector's
-- private state (hidden), and the columns that filters and reference checks look up.
-- sync_pos: the position of the last event that changed the row; pulls read by it.

CREATE TABLE shows (
    owner       uuid NOT NULL,
    id          uuid NOT NULL,
    version     integer NOT NULL,
    sync_pos    bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    deleted_at  timestamptz,
    status      TEXT,
    date        TEXT,
    body        text NOT NULL,
    hidden      text NOT NULL,
    PRIMARY KEY (owner, id)
);
CREATE INDEX shows_sync ON shows (owner, sync_pos);

CREATE TABLE costs (
    owner       uuid NOT NULL,
    id          uuid NOT NULL,
    version     integer NOT NULL,
    sync_pos    bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    deleted_at  timestamptz,
    show_id     uuid,
    body        text NOT NULL,
    hidden      text NOT NULL,
    PRIMARY KEY (owner, id)
);
CREATE INDEX costs_sync ON costs (owner, sync_pos);

CREATE TABLE workouts (
    owner       uuid NOT NULL,
    id          uuid NOT NULL,
    version     integer NOT NULL,
    sync_pos    bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    deleted_at  timestamptz,
    date        TEXT,
    body        text NOT NULL,
    hidden      text NOT NULL,
    PRIMARY KEY (owner, id)
);
CREATE INDEX workouts_sync ON workouts (owner, sync_pos);

CREATE TABLE inventory (
    owner       uuid NOT NULL,
    id          uuid NOT NULL,
    version     integer NOT NULL,
    sync_pos    bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    deleted_at  timestamptz,
    sku         TEXT,
    low_stock   boolean,
    body        text NOT NULL,
    hidden      text NOT NULL,
    PRIMARY KEY (owner, id)
);
CREATE INDEX inventory_sync ON inventory (owner, sync_pos);

CREATE INDEX shows_date ON shows (owner, date, id);
CREATE INDEX costs_show ON costs (owner, show_id);
CREATE INDEX workouts_date ON workouts (owner, date, id);
CREATE INDEX inventory_sku ON inventory (owner, sku);
