-- Scoring's budget state: which traces each policy version promoted. Keyed by trace so a
-- redelivered trace finds its own row and reaches the same decision again.
CREATE TABLE scoring_promotions (
    trace_id        text NOT NULL,
    policy_version  text NOT NULL,
    pattern_id      text NOT NULL,
    day             date NOT NULL,
    PRIMARY KEY (trace_id, policy_version)
);
CREATE INDEX scoring_promotions_pattern ON scoring_promotions (policy_version, pattern_id);
CREATE INDEX scoring_promotions_day ON scoring_promotions (policy_version, day);
