-- 0019: the URL preview cache (issue 14 item 5, media/preview.py). One row per URL: the
-- OpenGraph answer as JSON, kept until expires_ts, then fetched again. Rows past their expiry
-- are deleted as new previews are stored, so the table holds only the URLs in recent use.
CREATE TABLE url_previews (
    url TEXT PRIMARY KEY,
    og TEXT NOT NULL,                           -- JSON object, exactly as answered
    fetched_ts INTEGER NOT NULL,                -- ms
    expires_ts INTEGER NOT NULL                 -- ms
);
CREATE INDEX url_previews_expiry ON url_previews (expires_ts);
