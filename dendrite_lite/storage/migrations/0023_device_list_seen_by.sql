-- 0023 (issue 15, SyTest "Changing user-signing key notifies local users"): a device list
-- change only one user may hear of. A user-signing key, and the signatures it makes of other
-- users' master keys, are private to their owner (Synapse's user signature stream): seen_by
-- names that user; NULL is a change for everyone sharing a room with user_id.
ALTER TABLE device_list_changes ADD COLUMN seen_by TEXT;
