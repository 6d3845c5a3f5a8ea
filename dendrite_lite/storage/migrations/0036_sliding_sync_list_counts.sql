-- 0036 (issue 18): the lists' counts each sliding sync position sent (JSON {list name: count}),
-- so a count that changes with nothing else to send (a room joined or left outside the window)
-- is news that ends a long-poll. NULL: not known (a position saved before this column).
ALTER TABLE sliding_sync_positions ADD COLUMN list_counts TEXT;
