-- 0033 (issue 19, MSC3202): each application service's cursor into the device list stream
-- (device_list_changes), instead of a "changed" outbox row written after each change's commit
-- (a crash between the two lost the change). A transaction carries the changes after
-- device_list_position up to pending_device_list_up_to (0: none), recorded with the
-- transaction so a resend carries the same ones; the AS's 200 moves the cursor there.
-- NULL: not started; the AS starts at the stream's position when it first has device lists.
ALTER TABLE appservice_state ADD COLUMN device_list_position INTEGER;
ALTER TABLE appservice_state ADD COLUMN pending_device_list_up_to INTEGER NOT NULL DEFAULT 0;

-- The ASes known before: their outbox already holds every change until now (such rows stay
-- and are still delivered), so their cursors start here.
UPDATE appservice_state
SET device_list_position = COALESCE(
    (SELECT seq FROM sqlite_sequence WHERE name = 'device_list_changes'), 0
);
