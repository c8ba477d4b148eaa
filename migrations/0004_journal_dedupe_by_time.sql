-- The journal's duplicate check by (event_ts, delivery_key) instead of
-- delivery_key alone. A redelivery carries the same body, so the same
-- timestamp: the same duplicates are found. New rows now land in the
-- index next to each other (timestamps are close to now) instead of at a
-- random place in an index as large as the whole journal, which made every
-- commit and checkpoint of a journal of millions of rows write scattered
-- pages. runsync always sets event_ts. SQLite cannot drop a column's UNIQUE,
-- so the table is rebuilt.
CREATE TABLE webhook_events_rebuilt (
  seq          INTEGER PRIMARY KEY,
  received_at  INTEGER NOT NULL,
  delivery_key TEXT NOT NULL,
  event_name   TEXT NOT NULL,
  project_code TEXT,
  run_id       INTEGER,
  event_ts     INTEGER,
  body         TEXT NOT NULL,
  result       TEXT NOT NULL CHECK (result = 'applied' OR result = 'stale' OR result = 'ignored')
);
INSERT INTO webhook_events_rebuilt
  SELECT seq, received_at, delivery_key, event_name, project_code, run_id,
         event_ts, body, result
  FROM webhook_events ORDER BY seq;
DROP TABLE webhook_events;
ALTER TABLE webhook_events_rebuilt RENAME TO webhook_events;
CREATE INDEX webhook_events_by_received ON webhook_events (received_at);
CREATE UNIQUE INDEX webhook_events_dedupe ON webhook_events (event_ts, delivery_key);
