-- Refreshes that TestRail webhook hints asked for (SPEC §4a): one row per
-- run, plan or project, however many hints named it, until a refresh that
-- began after its newest hint has been applied. Times are unix
-- milliseconds, for the hint-to-mirror latency.
CREATE TABLE pending_refreshes (
  kind             TEXT NOT NULL CHECK (kind = 'run' OR kind = 'plan' OR kind = 'project'),
  entity_id        INTEGER NOT NULL,
  first_hint_at_ms INTEGER NOT NULL,  -- the oldest hint this row still owes a refresh
  last_hint_at_ms  INTEGER NOT NULL,  -- the newest hint
  hints            INTEGER NOT NULL,  -- hints coalesced into this row
  PRIMARY KEY (kind, entity_id)
) WITHOUT ROWID;
