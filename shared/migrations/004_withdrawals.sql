-- A replay under a new policy may withdraw promotions an earlier policy made: fixtures then
-- fall back to an earlier version or are retired, and a later promotion restores them.
-- Each gate-log line says under which policy and for which decision (when it was made) it
-- happened: a redelivery logs nothing twice, a later retire/restore cycle still logs.
ALTER TABLE gate_log ADD COLUMN IF NOT EXISTS policy_version text NOT NULL DEFAULT '';
ALTER TABLE gate_log ADD COLUMN IF NOT EXISTS decision_at timestamptz NOT NULL
    DEFAULT '-infinity';
ALTER TABLE gate_log DROP CONSTRAINT IF EXISTS gate_log_fixture_id_version_action_key;
ALTER TABLE gate_log ADD CONSTRAINT gate_log_once
    UNIQUE (fixture_id, version, action, policy_version, decision_at);

-- When the stage (or replay) that made a decision stamped it: a promotion older than a
-- withdrawal of the same trace is stale.
ALTER TABLE decisions ADD COLUMN IF NOT EXISTS stamped_at timestamptz;

-- Which fixtures a trace sourced: looked up for every withdrawn promotion.
CREATE INDEX IF NOT EXISTS fixture_versions_source ON fixture_versions (source_trace_id);
