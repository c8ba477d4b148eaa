-- Readable times (SPEC §6): the same rows as runs and run_changes, with every
-- time column (unix seconds) also as <column>_iso, UTC YYYY-MM-DDTHH:MM:SSZ.
-- NULL stays NULL. The bookkeeping columns details_at … report_at use 0 for
-- "never observed"; their _iso is NULL then.
CREATE VIEW v_runs AS
SELECT
  r.*,
  strftime('%Y-%m-%dT%H:%M:%SZ', r.created_on, 'unixepoch')     AS created_on_iso,
  strftime('%Y-%m-%dT%H:%M:%SZ', r.completed_on, 'unixepoch')   AS completed_on_iso,
  strftime('%Y-%m-%dT%H:%M:%SZ', r.last_event_at, 'unixepoch')  AS last_event_at_iso,
  strftime('%Y-%m-%dT%H:%M:%SZ', r.last_polled_at, 'unixepoch') AS last_polled_at_iso,
  strftime('%Y-%m-%dT%H:%M:%SZ', r.updated_at, 'unixepoch')     AS updated_at_iso,
  strftime('%Y-%m-%dT%H:%M:%SZ', nullif(r.details_at, 0), 'unixepoch') AS details_at_iso,
  strftime('%Y-%m-%dT%H:%M:%SZ', nullif(r.counts_at, 0), 'unixepoch')  AS counts_at_iso,
  strftime('%Y-%m-%dT%H:%M:%SZ', nullif(r.state_at, 0), 'unixepoch')   AS state_at_iso,
  strftime('%Y-%m-%dT%H:%M:%SZ', nullif(r.report_at, 0), 'unixepoch')  AS report_at_iso
FROM runs AS r;

CREATE VIEW v_run_changes AS
SELECT
  c.*,
  strftime('%Y-%m-%dT%H:%M:%SZ', c.changed_at, 'unixepoch') AS changed_at_iso
FROM run_changes AS c;
