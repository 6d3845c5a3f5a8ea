-- 0022 (issue 14 item 6): the media a local user uploaded, found without a scan, for the
-- per-user quota (media.max_user_bytes: the sum of the sizes of their media rows).
CREATE INDEX media_by_user ON media (user_id, size) WHERE user_id IS NOT NULL;
