-- 0017: dehydrated devices (MSC3814, as Synapse serves it under
-- /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device).
-- At most one per user. The device itself is an ordinary row of `devices` (so to-device
-- messages for "*" reach it and its keys are in /keys/query); this row only marks it and keeps
-- the client's encrypted `device_data`. Deleting the device by any road (DELETE /devices,
-- deactivation, replacement) drops the mark through the foreign key.
CREATE TABLE dehydrated_devices (
    user_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    device_data TEXT NOT NULL,                  -- JSON object as uploaded
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
