-- 0024 (issue 15, SyTest "Inbound federation redacts events from erased users"): users who
-- deactivated with erase=true (account_deactivation.yaml). Their events are served redacted to
-- other servers from then on, as Synapse does (its erased_users table).
CREATE TABLE erased_users (
    user_id TEXT PRIMARY KEY
);
