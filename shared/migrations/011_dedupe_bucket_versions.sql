-- How many batches have written each pattern bucket. A dedupe instance keeps what it read
-- of a bucket between batches, and reads this under the bucket's lock: the same number
-- means no one else wrote the bucket since, a different one that its rows must be read
-- again (another instance held its partition meanwhile).
CREATE TABLE IF NOT EXISTS dedupe_bucket_versions (
    bucket   text PRIMARY KEY,
    version  bigint NOT NULL
);

-- Versions come from one sequence, so a number is never given twice, even after the table
-- is emptied: an instance can never mistake a bucket rewritten since for the one it read.
CREATE SEQUENCE IF NOT EXISTS dedupe_bucket_version_seq;
