-- Approval requests, votes and their history.
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    gateway TEXT NOT NULL,
    requester_sub TEXT NOT NULL,
    requester_email TEXT NOT NULL,
    requester_json TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    connection TEXT NOT NULL,
    database_name TEXT NOT NULL,
    statement TEXT NOT NULL,
    params_json TEXT NOT NULL,
    statement_sha256 TEXT NOT NULL,
    facts_json TEXT NOT NULL,
    reasons_json TEXT NOT NULL,
    groups_json TEXT NOT NULL,
    quorum BIGINT NOT NULL,
    mode TEXT NOT NULL,
    state TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    decided_at BIGINT,
    decision_json TEXT,
    -- A `retry` approval is used once, by the requester re-running it.
    consumed BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS requests_state ON requests (state, expires_at);
CREATE TABLE IF NOT EXISTS votes (
    request_id TEXT NOT NULL,
    approver TEXT NOT NULL,
    vote TEXT NOT NULL,
    comment TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (request_id, approver)
);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    comment TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_request ON events (request_id, at);
