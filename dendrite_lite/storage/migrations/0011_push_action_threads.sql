-- 0011: unread counts per thread (client-server-api §Receiving notifications, threaded read
-- receipts): each push action records the thread of its event, "main" for the main timeline or
-- the thread root's event id. Rows written before this migration count as main timeline.
ALTER TABLE event_push_actions ADD COLUMN thread_id TEXT NOT NULL DEFAULT 'main';
