-- When dedupe recorded a trace, as opposed to when the trace happened (seen_at). Retention
-- of dedupe_traces counts from this: a trace that happened long ago (a late or replayed
-- one) must still be recognised when it is redelivered, or it is counted twice.
ALTER TABLE dedupe_traces ADD COLUMN IF NOT EXISTS recorded_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX IF NOT EXISTS dedupe_traces_recorded_at ON dedupe_traces (recorded_at);
