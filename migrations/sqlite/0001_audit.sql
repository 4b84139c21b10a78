-- Audit store, SQLite (the embedded default). Applied at start.
CREATE TABLE IF NOT EXISTS audit_records (
    instance TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    at_us INTEGER NOT NULL,
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
    rows_affected INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    error_code TEXT NOT NULL,
    key_id TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (instance, seq)
);
-- The time index serves `export --since/--until`. Records have no index
-- by session (or user): with many sessions open at once, each commit would
-- touch one page of it per session. `audit_sessions` finds them instead.
CREATE INDEX IF NOT EXISTS audit_records_at ON audit_records (at_us);
-- One row per session, kept by the writer in the same transaction as the
-- records: who, from where, and the span of the instance's chain that
-- holds the session's records (first_seq..last_seq) with their times and
-- counts. Replay, the viewer and `export --session` read a session's span,
-- the session list reads this table alone. `audit verify` checks it
-- against the records. Stores made before it are filled from their
-- records at the first start of a gateway that has it.
CREATE TABLE IF NOT EXISTS audit_sessions (
    session_id TEXT NOT NULL,
    instance TEXT NOT NULL,
    user_name TEXT NOT NULL,
    connection TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    application TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    first_us INTEGER NOT NULL,
    last_us INTEGER NOT NULL,
    statements INTEGER NOT NULL,
    denied INTEGER NOT NULL,
    PRIMARY KEY (session_id, instance)
);
-- The list, newest first, by user or connection, and retention's pruning
-- of the rows of sessions wholly pruned.
CREATE INDEX IF NOT EXISTS audit_sessions_first ON audit_sessions (first_us);
CREATE INDEX IF NOT EXISTS audit_sessions_user ON audit_sessions (user_name, first_us);
CREATE INDEX IF NOT EXISTS audit_sessions_connection ON audit_sessions (connection, first_us);
CREATE INDEX IF NOT EXISTS audit_sessions_last ON audit_sessions (instance, last_seq);
-- Signed checkpoints: (instance, seq, hash) signed with the instance key.
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    instance TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (instance, seq)
);
-- Each instance's public key, as it announced it at its first start.
CREATE TABLE IF NOT EXISTS audit_instances (
    instance TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    created_us INTEGER NOT NULL
);
-- Audit viewer sign-ins: the SHA-256 (hex) of each session cookie (never
-- the cookie itself), whose it is and until when (Unix µs). They survive a
-- gateway restart, and gateways sharing the store share them.
CREATE TABLE IF NOT EXISTS audit_viewer_logins (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    expires_us INTEGER NOT NULL
);
