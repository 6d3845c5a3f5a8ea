-- 0021: the device that set each pusher, so deleting the device (logout, DELETE /devices)
-- deletes its pushers too: a phone signed out must stop receiving its user's notifications.
-- NULL for pushers set before this migration: they stay until removed by hand or rejected.
ALTER TABLE pushers ADD COLUMN device_id TEXT;
CREATE INDEX pushers_device ON pushers (user_id, device_id);
