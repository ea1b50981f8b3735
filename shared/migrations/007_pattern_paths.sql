-- The tool paths (tool names in call order) of a pattern's first few runs: the reference
-- a run of the same request is compared with for trajectory quality. Tool names only.
CREATE TABLE IF NOT EXISTS pattern_paths (
    pattern_id  text NOT NULL,
    position    smallint NOT NULL,
    tools       text[] NOT NULL,
    PRIMARY KEY (pattern_id, position)
);
