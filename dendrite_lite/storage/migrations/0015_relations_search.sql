-- 0015: event relationships (client-server-api §Forming relationships between events) and
-- server-side search (modules/search.md), both filled from the events already held.

-- One row per timeline event whose content has an m.relates_to with a string event_id and
-- rel_type (replies have no rel_type and are not relations the server aggregates). Written in
-- the event's own transaction (storage.relations); outliers, rejected and soft-failed events
-- have none. A redaction deletes its target's row: redacting a child breaks the relationship.
-- room_id, type, sender and stream_ordering are copied from the event so that /relations
-- (with recursion), bundled aggregations and /threads read this table alone.
CREATE TABLE event_relations (
    event_id TEXT PRIMARY KEY NOT NULL,          -- the child
    relates_to TEXT NOT NULL,                    -- the parent's event id
    rel_type TEXT NOT NULL,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    sender TEXT NOT NULL,
    stream_ordering INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX event_relations_parent ON event_relations (relates_to, rel_type, stream_ordering);
CREATE INDEX event_relations_room ON event_relations (room_id, rel_type, relates_to);

INSERT OR IGNORE INTO event_relations
    (event_id, relates_to, rel_type, room_id, type, sender, stream_ordering)
SELECT e.event_id,
       json_extract(e.json, '$.content."m.relates_to".event_id'),
       json_extract(e.json, '$.content."m.relates_to".rel_type'),
       e.room_id, e.type, e.sender, e.stream_ordering
FROM events e
WHERE e.outlier = 0 AND e.rejected_reason IS NULL AND e.soft_failed = 0
  AND json_type(e.json, '$.content."m.relates_to".event_id') = 'text'
  AND json_type(e.json, '$.content."m.relates_to".rel_type') = 'text'
  AND NOT EXISTS (
      SELECT 1 FROM redactions r JOIN events re ON re.event_id = r.event_id
      WHERE r.redacts = e.event_id AND re.rejected_reason IS NULL);

-- The searchable text of each timeline event (search.md: content.body of m.room.message,
-- content.name of m.room.name, content.topic of m.room.topic and the text/plain body of its
-- m.topic), one row per event keyed by its stream position. `key` is the spec's key name, for
-- the request's `keys`. Porter stemming: "martians" finds "martian". Redactions delete rows.
CREATE VIRTUAL TABLE event_search USING fts5(
    value,
    key UNINDEXED,
    room_id UNINDEXED,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

INSERT INTO event_search (rowid, value, key, room_id)
SELECT stream_ordering, value, key, room_id FROM (
    SELECT e.stream_ordering, e.room_id, e.event_id,
           CASE e.type
               WHEN 'm.room.message' THEN 'content.body'
               WHEN 'm.room.name' THEN 'content.name'
               ELSE 'content.topic'
           END AS key,
           CASE e.type
               WHEN 'm.room.message' THEN
                   CASE WHEN json_type(e.json, '$.content.body') = 'text'
                        THEN json_extract(e.json, '$.content.body') END
               WHEN 'm.room.name' THEN
                   CASE WHEN json_type(e.json, '$.content.name') = 'text'
                        THEN json_extract(e.json, '$.content.name') END
               ELSE trim(
                   COALESCE(CASE WHEN json_type(e.json, '$.content.topic') = 'text'
                                 THEN json_extract(e.json, '$.content.topic') END, '')
                   || ' ' ||
                   COALESCE((SELECT json_extract(t.value, '$.body')
                             FROM json_each(e.json, '$.content."m.topic"."m.text"') t
                             WHERE t.type = 'object' AND json_type(t.value, '$.body') = 'text'
                               AND COALESCE(json_extract(t.value, '$.mimetype'), 'text/plain')
                                   = 'text/plain'
                               AND json_extract(t.value, '$.body')
                                   IS NOT json_extract(e.json, '$.content.topic')
                             LIMIT 1), ''))
           END AS value
    FROM events e
    WHERE e.outlier = 0 AND e.rejected_reason IS NULL AND e.soft_failed = 0
      AND (e.type = 'm.room.message'
           OR (e.type IN ('m.room.name', 'm.room.topic') AND e.state_key = ''))
      AND NOT EXISTS (
          SELECT 1 FROM redactions r JOIN events re ON re.event_id = r.event_id
          WHERE r.redacts = e.event_id AND re.rejected_reason IS NULL)
)
WHERE value IS NOT NULL AND value != '';
