-- Dedupe v2: patterns assigned within a structural bucket by intent, and a pattern's
-- diverse exemplars. Only ids and MinHash sketches (hash values, int8[]) are kept: never
-- the words a sketch was built from.

-- Which role a trace played in its pattern, so that a redelivery gets the same answer.
ALTER TABLE dedupe_traces ADD COLUMN IF NOT EXISTS near_copy boolean NOT NULL DEFAULT false;

-- Up to a few wordings of a pattern's intent, compared with the intent of new traces of
-- its bucket. Position 0 is the founding trace's.
CREATE TABLE IF NOT EXISTS pattern_intents (
    pattern_id  text NOT NULL,
    position    smallint NOT NULL,
    bucket      text NOT NULL,
    signature   int8[] NOT NULL,
    PRIMARY KEY (pattern_id, position)
);

-- LSH band keys of those intents: which patterns of a bucket are worth comparing with.
CREATE TABLE IF NOT EXISTS pattern_intent_bands (
    bucket      text NOT NULL,
    band_key    int8 NOT NULL,
    pattern_id  text NOT NULL,
    PRIMARY KEY (bucket, band_key, pattern_id)
);

-- A pattern's diverse exemplars: the content sketch of each and the trace it came from.
CREATE TABLE IF NOT EXISTS pattern_exemplars (
    pattern_id  text NOT NULL,
    position    smallint NOT NULL,
    trace_id    text NOT NULL,
    signature   int8[] NOT NULL,
    PRIMARY KEY (pattern_id, position),
    UNIQUE (pattern_id, trace_id)
);
