-- 0025 (issue 16, admin API media): media a server admin protected from quarantine (Synapse's
-- safe_from_quarantine: /_synapse/admin/v1/media/protect/{mediaId}), and who quarantined a row
-- (Synapse's quarantined_by, shown by the media info admin API; NULL when not quarantined or
-- when it was quarantined from the CLI or the admin socket).
ALTER TABLE media ADD COLUMN protected INTEGER NOT NULL DEFAULT 0;
ALTER TABLE media ADD COLUMN quarantined_by TEXT;
