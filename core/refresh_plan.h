// Which requests serve the refreshes TestRail webhook hints asked for
// (SPEC §4a "Refreshes are planned by cost"). Pure functions; no I/O.
//
// A project's active listing (one poll cycle: pages of 250 runs, get_plans
// and one get_plan per active plan) shows every active run of the project.
// When the active runs of a project waiting for a refresh would cost more
// get_run requests than that listing, the listing serves them all and only
// the runs it no longer shows get their own get_run. Ids the mirror does
// not know may be new runs or plans of a configured project, which the
// listings of this pass show; what no listing shows is looked up last, so
// unknown or bogus ids never queue ahead of real work.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace runsync {

// Runs per page of get_runs / get_plans (TestRail's page size).
inline constexpr std::int64_t kListingPageSize = 250;

// The size of a project's active listing as the mirror last saw it.
struct ListingSize {
  std::int64_t active_runs = 0;   // active runs outside and inside plans
  std::int64_t active_plans = 0;  // active plans (one get_plan each)
};
// Requests one active listing costs: the pages of runs (at least one),
// get_plans, and one get_plan per active plan.
std::int64_t listing_cost(const ListingSize& size);

// What the mirror knows of a run a hint named.
struct MirroredRun {
  std::int64_t project_id = 0;
  std::optional<std::int64_t> plan_id;
  bool active = false;  // neither completed nor deleted: its project's active listing shows it
};
// What the mirror knows of a plan a hint named.
struct MirroredPlan {
  std::int64_t project_id = 0;
  bool active = false;  // it holds an active run: its project's active listing fetches it
};

struct RefreshWaiting {
  // The ids waiting for a refresh (each at most once), the longest waiting first.
  std::vector<std::int64_t> runs;
  std::vector<std::int64_t> plans;
  std::vector<std::int64_t> projects;
  bool every_project = false;  // a collapsed backlog asks for every configured project
  // Of `runs` and `plans`, those the mirror holds.
  std::map<std::int64_t, MirroredRun> known_runs;
  std::map<std::int64_t, MirroredPlan> known_plans;
  // Every configured project, by id, with its last listing's size.
  std::map<std::int64_t, ListingSize> listings;
};

// One get_run or get_plan, unless a listing of this pass showed the id.
struct Lookup {
  std::int64_t id = 0;
  // The listing expected to show it (one of RefreshPlan::listings); the
  // lookup is made only when that listing ran and did not show it.
  std::optional<std::int64_t> listed_by;
};

// The requests of one pass, in the order to make them.
struct RefreshPlan {
  std::vector<std::int64_t> listings;          // configured projects whose active cycle to run
  std::vector<std::int64_t> ignored_projects;  // project ids that are not configured
  std::vector<Lookup> plans;                   // get_plan for the plans the mirror knows
  std::vector<Lookup> runs;                    // get_run for the runs the mirror knows
  std::vector<Lookup> unknown_plans;           // then get_plan for plans the mirror does not know
  std::vector<Lookup> unknown_runs;            // and get_run, last, for runs it does not know
};

// The plan for `waiting`. Listings come in the order of their oldest
// waiting id; lookups keep the order of `waiting`. An unknown id never has
// listed_by: any listing of the pass may show it.
RefreshPlan plan_refreshes(const RefreshWaiting& waiting);

}  // namespace runsync
