-- Accounts: users, their device sessions, and the hashes of the sessions' refresh tokens.
-- Rate-limit counters live in memory in the embedded mode (one process), so no table here.
CREATE TABLE users (
    id             UUID PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,  -- normalized (trimmed, lower case) by the server
    name           TEXT,
    password_hash  TEXT NOT NULL,         -- argon2id, PHC string
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

-- One row per login (a device). Revoking it ends its refresh tokens and its access tokens.
CREATE TABLE sessions (
    id              UUID PRIMARY KEY,
    user_id         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id       TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    last_used_at    TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    revoked_at      TIMESTAMPTZ,
    revoked_reason  TEXT
);
CREATE INDEX sessions_user ON sessions (user_id, created_at);

-- Only SHA-256 digests are stored. A row with used_at set was rotated: presenting it again
-- is taken as theft and revokes the session.
CREATE TABLE refresh_tokens (
    token_hash  BLOB PRIMARY KEY,
    session_id  UUID NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id, expires_at);
