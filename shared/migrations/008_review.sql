-- Review (issue 15): the cases scoring held, kept for people to judge (redacted, as on
-- traces.scored), and the verdicts they gave. A case leaves the queue when a verdict
-- covers it; a snoozed case comes back when its snooze ends.
CREATE TABLE IF NOT EXISTS review_cases (
    trace_id       text PRIMARY KEY,
    pattern_id     text NOT NULL,
    agent          text NOT NULL DEFAULT '',
    held_at        timestamptz NOT NULL,
    total          double precision NOT NULL,
    risk           double precision NOT NULL,
    policy_version text NOT NULL,
    event          jsonb NOT NULL,
    status         text NOT NULL DEFAULT 'held',
    verdict_id     text,
    snoozed_until  timestamptz
);
CREATE INDEX IF NOT EXISTS review_cases_open ON review_cases (status, pattern_id);

-- Every verdict, once (its id is a digest of its content): what the review app shows as
-- done, and what the release-gate report lists under "Reviewed".
CREATE TABLE IF NOT EXISTS review_verdicts (
    verdict_id    text PRIMARY KEY,
    pattern_id    text NOT NULL,
    verdict       text NOT NULL,
    reviewer      text NOT NULL,
    reason        text NOT NULL,
    expected      jsonb,
    kinds         text[] NOT NULL,
    trace_ids     text[] NOT NULL,
    whole_pattern boolean NOT NULL,
    at            timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS review_verdicts_at ON review_verdicts (at);

-- Scoring's copy of the latest verdict per pattern: a rejected pattern's later traces are
-- rejected with the reviewer's reason.
CREATE TABLE IF NOT EXISTS scoring_pattern_verdicts (
    pattern_id  text PRIMARY KEY,
    verdict     text NOT NULL,
    verdict_id  text NOT NULL,
    reviewer    text NOT NULL,
    reason      text NOT NULL,
    at          timestamptz NOT NULL
);
