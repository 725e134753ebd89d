-- The rate limits' sliding windows (CONTRACT.md: failed sign-ins per account and address, per
-- address, sign-ups per address), shared by every process: N processes allow the same number
-- of tries as one. A row per counted event; at most a limit's worth per key, and none older
-- than its window once swept.
CREATE TABLE rate_hits (
    counter text COLLATE "C" NOT NULL,
    key     text COLLATE "C" NOT NULL,
    at      bigint NOT NULL
);
CREATE INDEX rate_hits_key ON rate_hits (counter, key, at);
