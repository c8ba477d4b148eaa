#include "core/refresh_plan.h"

#include <algorithm>
#include <set>

namespace runsync {

std::int64_t listing_cost(const ListingSize& size) {
  const std::int64_t runs = std::max<std::int64_t>(0, size.active_runs);
  const std::int64_t pages =
      std::max<std::int64_t>(1, (runs + kListingPageSize - 1) / kListingPageSize);
  return pages + 1 + std::max<std::int64_t>(0, size.active_plans);
}

namespace {

// Calls `f(project_id)` for each of `ids` that the mirror (`known`) holds as
// active, in the order of `ids`.
template <typename Known, typename F>
void for_each_active(const std::vector<std::int64_t>& ids, const Known& known, F f) {
  for (std::int64_t id : ids) {
    const auto it = known.find(id);
    if (it != known.end() && it->second.active) f(it->second.project_id);
  }
}

}  // namespace

RefreshPlan plan_refreshes(const RefreshWaiting& waiting) {
  RefreshPlan plan;
  // What the waiting ids of each configured project would cost one by one,
  // counting only those its active listing shows.
  std::map<std::int64_t, std::int64_t> lookups_saved;
  auto save = [&](std::int64_t project) { ++lookups_saved[project]; };
  for_each_active(waiting.runs, waiting.known_runs, save);
  for_each_active(waiting.plans, waiting.known_plans, save);
  std::set<std::int64_t> listed;
  auto list = [&](std::int64_t project) {
    if (waiting.listings.count(project) && listed.insert(project).second) {
      plan.listings.push_back(project);
    }
  };
  auto list_if_worth = [&](std::int64_t project) {
    const auto size = waiting.listings.find(project);
    if (size != waiting.listings.end() && lookups_saved[project] > listing_cost(size->second)) {
      list(project);
    }
  };

  for (std::int64_t id : waiting.projects) {
    if (waiting.listings.count(id)) {
      list(id);
    } else {
      plan.ignored_projects.push_back(id);
    }
  }
  if (waiting.every_project) {
    for (const auto& [id, size] : waiting.listings) list(id);
  }
  // The listings cost decides, in the order of each project's oldest waiting id.
  for_each_active(waiting.runs, waiting.known_runs, list_if_worth);
  for_each_active(waiting.plans, waiting.known_plans, list_if_worth);

  // A lookup names its project when that project's listing answers it.
  auto lookups = [&](const std::vector<std::int64_t>& ids, const auto& known,
                     std::vector<Lookup>& lookups_of_known, std::vector<Lookup>& unknown) {
    for (std::int64_t id : ids) {
      const auto it = known.find(id);
      if (it == known.end()) {
        unknown.push_back({id, std::nullopt});
      } else if (it->second.active && listed.count(it->second.project_id)) {
        lookups_of_known.push_back({id, it->second.project_id});
      } else {
        lookups_of_known.push_back({id, std::nullopt});
      }
    }
  };
  lookups(waiting.plans, waiting.known_plans, plan.plans, plan.unknown_plans);
  lookups(waiting.runs, waiting.known_runs, plan.runs, plan.unknown_runs);
  return plan;
}

}  // namespace runsync
