-- Audit store, PostgreSQL (several gateways share it). Applied at start.
CREATE TABLE IF NOT EXISTS audit_records (
    instance TEXT NOT NULL,
    seq BIGINT NOT NULL,
    id TEXT NOT NULL,
    at_us BIGINT NOT NULL,
    kind TEXT NOT NULL,
    session_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    groups_json TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    application TEXT NOT NULL,
    connection TEXT NOT NULL,
    action TEXT NOT NULL,
    approval_id TEXT NOT NULL,
    command_tag TEXT NOT NULL,
    rows_affected BIGINT NOT NULL,
    duration_us BIGINT NOT NULL,
    error_code TEXT NOT NULL,
    key_id TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (instance, seq)
);
CREATE INDEX IF NOT EXISTS audit_records_session ON audit_records (session_id);
CREATE INDEX IF NOT EXISTS audit_records_at ON audit_records (at_us);
CREATE INDEX IF NOT EXISTS audit_records_user ON audit_records (user_name);
-- Signed checkpoints: (instance, seq, hash) signed with the instance key.
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    instance TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    at_us BIGINT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (instance, seq)
);
-- Each instance's public key, as it announced it at its first start.
CREATE TABLE IF NOT EXISTS audit_instances (
    instance TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    created_us BIGINT NOT NULL
);
-- Audit viewer sign-ins: the SHA-256 (hex) of each session cookie (never
-- the cookie itself), whose it is and until when (Unix µs). They survive a
-- gateway restart, and gateways sharing the store share them.
CREATE TABLE IF NOT EXISTS audit_viewer_logins (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    expires_us BIGINT NOT NULL
);
