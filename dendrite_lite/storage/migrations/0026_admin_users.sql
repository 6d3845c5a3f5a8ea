-- 0026 (issue 16, admin API users): what Synapse's user admin API shows and sets that we did not
-- keep. Shadow-banned users' room sends answer success but reach nobody (Synapse's
-- users.shadow_banned); user_type is Synapse's (NULL: a regular user, else "bot" or "support");
-- each device's last user agent goes with its last address and time, for /admin/whois sessions.
ALTER TABLE accounts ADD COLUMN shadow_banned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN user_type TEXT;
ALTER TABLE devices ADD COLUMN last_seen_user_agent TEXT;
