-- 0020 (issue 14 items 1-3): the media repository's metadata. The files themselves live on
-- disk under <data_dir>/media, named by the SHA-256 of their content (media/store.py), so
-- identical uploads share one file; these rows map an mxc:// URI to that file.
CREATE TABLE media (
    server_name TEXT NOT NULL,        -- the mxc:// authority: ours, or the origin of a remote copy
    media_id TEXT NOT NULL,           -- [A-Za-z0-9_-]+ (checked before any lookup)
    sha256 TEXT,                      -- hex of the content; NULL while an async upload is pending
    size INTEGER,                     -- bytes; NULL while pending
    content_type TEXT,                -- as uploaded (NULL: none given)
    upload_name TEXT,                 -- sanitised file name (NULL: none given)
    user_id TEXT,                     -- local uploader (or creator of a pending upload); NULL for remote
    created_ts INTEGER NOT NULL,      -- ms; for remote media, when our cached copy was made
    expires_ts INTEGER,               -- a pending upload must arrive before this (ms); NULL once done
    -- 1 when media.freeze_unauthenticated was on as the row was made: the legacy
    -- /_matrix/media/v3 download and thumbnail endpoints then answer 404 for it.
    authenticated INTEGER NOT NULL DEFAULT 0,
    quarantined INTEGER NOT NULL DEFAULT 0,   -- 1: never served (admin quarantine)
    last_access_ts INTEGER,           -- ms, for purging remote copies nobody asks for
    PRIMARY KEY (server_name, media_id)
);
-- Whether a file is still used by another row before it is deleted (content addressing).
CREATE INDEX media_by_sha256 ON media (sha256) WHERE sha256 IS NOT NULL;
-- The pending-upload limit per user.
CREATE INDEX media_pending ON media (user_id, expires_ts) WHERE sha256 IS NULL;

-- Thumbnails of a media row, each a content-addressed file like the original.
CREATE TABLE media_thumbnails (
    server_name TEXT NOT NULL,
    media_id TEXT NOT NULL,
    width INTEGER NOT NULL,           -- the requested (standard) size this thumbnail answers
    height INTEGER NOT NULL,
    method TEXT NOT NULL,             -- crop | scale
    animated INTEGER NOT NULL,        -- 1: made for animated=true (frames kept)
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    PRIMARY KEY (server_name, media_id, width, height, method, animated),
    FOREIGN KEY (server_name, media_id) REFERENCES media (server_name, media_id) ON DELETE CASCADE
);
CREATE INDEX media_thumbnails_by_sha256 ON media_thumbnails (sha256);
