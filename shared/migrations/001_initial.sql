-- Dedupe state. Dedupe runs before redaction, so it keeps ids, counts and fingerprints
-- only: session and user ids are stored as sha256 digests (enough to count
-- distinct values, useless to read), never trace content.
CREATE TABLE dedupe_traces (
    trace_id        text PRIMARY KEY,
    content_sha256  text NOT NULL,
    pattern_id      text NOT NULL,
    seen_at         timestamptz NOT NULL,
    forwarded       boolean NOT NULL DEFAULT false
);
CREATE INDEX dedupe_traces_pattern_seen ON dedupe_traces (pattern_id, seen_at);

CREATE TABLE patterns (
    pattern_id           text PRIMARY KEY,
    fingerprint_version  integer NOT NULL,
    fingerprint          text NOT NULL,
    occurrences          bigint NOT NULL,
    first_seen           timestamptz NOT NULL,
    last_seen            timestamptz NOT NULL
);

-- One row per distinct (pattern, dimension, value): session, user, day, agent_version.
CREATE TABLE pattern_members (
    pattern_id  text NOT NULL,
    dimension   text NOT NULL,
    value       text NOT NULL,
    PRIMARY KEY (pattern_id, dimension, value)
);

-- Coverage as last read from fixtures.index.
CREATE TABLE pattern_coverage (
    pattern_id       text PRIMARY KEY,
    fixture_version  integer NOT NULL,
    updated_at       timestamptz NOT NULL
);

-- Fixture store.
CREATE TABLE fixtures (
    fixture_id       text PRIMARY KEY,
    pattern_id       text NOT NULL,
    kind             text NOT NULL,
    current_version  integer NOT NULL,
    status           text NOT NULL DEFAULT 'active',
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    UNIQUE (pattern_id, kind)
);

CREATE TABLE fixture_versions (
    fixture_id       text NOT NULL REFERENCES fixtures (fixture_id),
    version          integer NOT NULL,
    body             jsonb NOT NULL,
    body_sha256      text NOT NULL,
    policy_version   text NOT NULL,
    source_trace_id  text NOT NULL,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (fixture_id, version),
    UNIQUE (fixture_id, body_sha256)
);

CREATE TABLE fixture_evidence (
    fixture_id       text NOT NULL,
    version          integer NOT NULL,
    source_trace_ids text[] NOT NULL,
    first_seen       timestamptz NOT NULL,
    last_seen        timestamptz NOT NULL,
    occurrences      bigint NOT NULL,
    scores           jsonb NOT NULL,
    policy_version   text NOT NULL,
    reason           text NOT NULL,
    PRIMARY KEY (fixture_id, version),
    FOREIGN KEY (fixture_id, version) REFERENCES fixture_versions (fixture_id, version)
);

CREATE TABLE decisions (
    trace_id        text NOT NULL,
    policy_version  text NOT NULL,
    pattern_id      text NOT NULL,
    decision        text NOT NULL,
    total           double precision NOT NULL,
    scores          jsonb NOT NULL,
    reason          text NOT NULL,
    decided_at      timestamptz NOT NULL,
    PRIMARY KEY (trace_id, policy_version)
);

-- The release-gate log: what was added, versioned or retired, when and why.
CREATE TABLE gate_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    action      text NOT NULL,
    fixture_id  text NOT NULL,
    version     integer NOT NULL,
    kind        text NOT NULL,
    pattern_id  text NOT NULL,
    criteria    text[] NOT NULL,
    reason      text NOT NULL,
    UNIQUE (fixture_id, version, action)
);

-- Fixtures the write-time privacy check refused, with why (never the offending value).
CREATE TABLE blocked_fixtures (
    fixture_id       text NOT NULL,
    source_trace_id  text NOT NULL,
    reason           text NOT NULL,
    at               timestamptz NOT NULL,
    PRIMARY KEY (fixture_id, source_trace_id)
);
