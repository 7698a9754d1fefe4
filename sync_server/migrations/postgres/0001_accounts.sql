-- Accounts: users, their device sessions, and the hashes of the sessions' refresh tokens.
CREATE TABLE users (
    id             uuid PRIMARY KEY,
    email          text NOT NULL UNIQUE,  -- normalized (trimmed, lower case) by the server
    name           text,
    password_hash  text NOT NULL,         -- argon2id, PHC string
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

-- One row per login (a device). Revoking it ends its refresh tokens and its access tokens.
CREATE TABLE sessions (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id       text,
    created_at      timestamptz NOT NULL,
    last_used_at    timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text
);
CREATE INDEX sessions_user ON sessions (user_id, created_at);

-- Only SHA-256 digests are stored. A row with used_at set was rotated: presenting it again
-- is taken as theft and revokes the session.
CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id, expires_at);

-- Fixed-window counters shared by every server process (rate_limit.py). UNLOGGED: losing
-- the counters in a crash only forgives a minute of attempts, and it spares the WAL.
CREATE UNLOGGED TABLE rate_limits (
    key           text NOT NULL,
    window_start  bigint NOT NULL,
    hits          integer NOT NULL,
    PRIMARY KEY (key, window_start)
);
