-- How many distinct members each pattern has per dimension, kept as the members are added:
-- counting pattern_members for every pattern a batch can read cost a scan of all of a
-- pattern's sessions and users, growing with its traffic.
CREATE TABLE IF NOT EXISTS pattern_member_counts (
    pattern_id  text NOT NULL,
    dimension   text NOT NULL,
    members     bigint NOT NULL,
    PRIMARY KEY (pattern_id, dimension)
);

INSERT INTO pattern_member_counts (pattern_id, dimension, members)
SELECT pattern_id, dimension, count(*) FROM pattern_members GROUP BY pattern_id, dimension
ON CONFLICT (pattern_id, dimension) DO UPDATE SET members = EXCLUDED.members;
