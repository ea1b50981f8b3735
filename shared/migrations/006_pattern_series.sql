-- Per-pattern time series, hourly and daily, per agent version: what slow-failure
-- detection compares a pattern with (its own past), and the release-gate report charts.
-- Counts and sums only, no trace content.
CREATE TABLE IF NOT EXISTS pattern_series (
    pattern_id     text NOT NULL,
    grain          text NOT NULL,          -- 'hour' or 'day'
    start          timestamptz NOT NULL,
    agent_version  text NOT NULL,
    agent          text NOT NULL,
    occurrences    integer NOT NULL,
    failures       integer NOT NULL,
    retries        integer NOT NULL,
    rescues        integer NOT NULL,
    escalations    integer NOT NULL,
    latency_ms     double precision NOT NULL,
    tokens         bigint NOT NULL,
    PRIMARY KEY (pattern_id, grain, start, agent_version)
);

-- The agent's whole traffic in the same buckets: the denominator of a pattern's rate.
CREATE TABLE IF NOT EXISTS agent_series (
    agent          text NOT NULL,
    grain          text NOT NULL,
    start          timestamptz NOT NULL,
    agent_version  text NOT NULL,
    traces         integer NOT NULL,
    PRIMARY KEY (agent, grain, start, agent_version)
);
