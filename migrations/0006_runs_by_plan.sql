-- The runs of a plan, for the hint refresher (SPEC §4a): whether the
-- mirror knows a plan a hint names, and its runs, without reading every run.
CREATE INDEX runs_by_plan ON runs (plan_id) WHERE plan_id IS NOT NULL;
