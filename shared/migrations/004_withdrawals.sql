-- A replay under a new policy may withdraw promotions an earlier policy made: fixtures then
-- fall back to an earlier version or are retired, and a later promotion restores them.
-- The gate log says under which policy each line happened, so a fixture retired under one
-- policy and restored under another keeps both lines.
ALTER TABLE gate_log ADD COLUMN IF NOT EXISTS policy_version text NOT NULL DEFAULT '';
ALTER TABLE gate_log DROP CONSTRAINT IF EXISTS gate_log_fixture_id_version_action_key;
ALTER TABLE gate_log ADD CONSTRAINT gate_log_once
    UNIQUE (fixture_id, version, action, policy_version);

-- Which fixtures a trace sourced: looked up for every withdrawn promotion.
CREATE INDEX IF NOT EXISTS fixture_versions_source ON fixture_versions (source_trace_id);
