-- Write-back commands (SPEC §7). Any program may queue one with plain SQL:
--   INSERT INTO outbox (command, target, body) VALUES ('close_run', 42, '{}');
-- The daemon executes pending rows in id order and records the outcome.
CREATE TABLE outbox (
  id         INTEGER PRIMARY KEY,
  command    TEXT NOT NULL
             CHECK (command IN ('add_run', 'update_run', 'close_run', 'delete_run')),
  target     INTEGER NOT NULL,               -- project id for add_run, else run id
  body       TEXT NOT NULL DEFAULT '{}',     -- JSON object sent to the API
  state      TEXT NOT NULL DEFAULT 'pending'
             CHECK (state IN ('pending', 'sending', 'done', 'failed', 'unknown')),
  attempts   INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  result     TEXT,                           -- JSON: the API's answer when done
  created_at INTEGER NOT NULL DEFAULT (unixepoch()),
  updated_at INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE INDEX outbox_by_state ON outbox (state, id);
