-- What is usual for each agent, learned from its traffic: per measure, the count, sum and
-- sum of squares of log values (enough for a geometric mean and a spread; no trace content).
CREATE TABLE IF NOT EXISTS agent_baselines (
    agent    text NOT NULL,
    measure  text NOT NULL,
    traces   bigint NOT NULL,
    total    double precision NOT NULL,
    squares  double precision NOT NULL,
    PRIMARY KEY (agent, measure)
);
