-- The mirror of TestRail runs (SPEC §6).
-- CHECKs use OR chains rather than IN lists: SQLite 3.40 builds a temporary
-- b-tree for every constant IN list of three or more items on each insert.
CREATE TABLE runs (
  run_id               INTEGER PRIMARY KEY,
  project_id           INTEGER,
  project_code         TEXT,
  name                 TEXT,
  description          TEXT,
  suite_id             INTEGER,
  milestone_id         INTEGER,
  assignedto_id        INTEGER,
  plan_id              INTEGER,
  plan_name            TEXT,
  config               TEXT,
  environment          TEXT,
  refs                 TEXT,
  url                  TEXT,
  created_on           INTEGER,
  created_by           INTEGER,
  completed_on         INTEGER,
  state                TEXT NOT NULL DEFAULT 'active'
                       CHECK (state = 'active' OR state = 'completed' OR state = 'aborted'
                              OR state = 'deleted'),
  is_completed         INTEGER NOT NULL DEFAULT 0 CHECK (is_completed = 0 OR is_completed = 1),
  cases_count          INTEGER,
  passed_count         INTEGER,
  failed_count         INTEGER,
  blocked_count        INTEGER,
  untested_count       INTEGER,
  retest_count         INTEGER,
  skipped_count        INTEGER,
  custom_status1_count INTEGER,
  custom_status2_count INTEGER,
  custom_status3_count INTEGER,
  custom_status4_count INTEGER,
  custom_status5_count INTEGER,
  custom_status6_count INTEGER,
  custom_status7_count INTEGER,
  duration_ms          INTEGER,
  report_visible       INTEGER CHECK (report_visible = 0 OR report_visible = 1),
  last_event_at        INTEGER,
  last_polled_at       INTEGER,
  updated_at           INTEGER NOT NULL,
  change_seq           INTEGER NOT NULL DEFAULT 0,
  -- When each field group was last observed (unix s; 0 = never): the
  -- "newest observation wins" bookkeeping of SPEC §6 rule 2.
  details_at           INTEGER NOT NULL DEFAULT 0,
  counts_at            INTEGER NOT NULL DEFAULT 0,
  state_at             INTEGER NOT NULL DEFAULT 0,
  report_at            INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_project_state ON runs (project_id, state);
CREATE INDEX runs_by_change_seq ON runs (change_seq);

-- Every change of a run, with its source. seq = the run's new change_seq.
CREATE TABLE run_changes (
  seq        INTEGER PRIMARY KEY,
  run_id     INTEGER NOT NULL,
  changed_at INTEGER NOT NULL,
  source     TEXT NOT NULL CHECK (source = 'webhook' OR source = 'poll' OR source = 'api'),
  changes    TEXT NOT NULL
);
CREATE INDEX run_changes_by_run ON run_changes (run_id, seq);

-- The journal of every accepted webhook delivery.
CREATE TABLE webhook_events (
  seq          INTEGER PRIMARY KEY,
  received_at  INTEGER NOT NULL,
  delivery_key TEXT NOT NULL UNIQUE,
  event_name   TEXT NOT NULL,
  project_code TEXT,
  run_id       INTEGER,
  event_ts     INTEGER,
  body         TEXT NOT NULL,
  result       TEXT NOT NULL CHECK (result = 'applied' OR result = 'stale' OR result = 'ignored')
);
CREATE INDEX webhook_events_by_received ON webhook_events (received_at);

-- One row per project per poll cycle; error IS NULL when it succeeded.
CREATE TABLE poll_cycles (
  id           INTEGER PRIMARY KEY,
  project_id   INTEGER NOT NULL,
  kind         TEXT NOT NULL CHECK (kind = 'active' OR kind = 'full'),
  started_at   INTEGER NOT NULL,
  finished_at  INTEGER,
  pages        INTEGER NOT NULL DEFAULT 0,
  requests     INTEGER NOT NULL DEFAULT 0,
  runs_seen    INTEGER NOT NULL DEFAULT 0,
  runs_changed INTEGER NOT NULL DEFAULT 0,
  runs_deleted INTEGER NOT NULL DEFAULT 0,
  error        TEXT
);
CREATE INDEX poll_cycles_by_project ON poll_cycles (project_id, id);
