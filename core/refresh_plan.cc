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

RefreshPlan plan_refreshes(const RefreshWaiting& waiting) {
  RefreshPlan plan;
  // What the waiting ids of each configured project would cost one by one,
  // counting only those its active listing shows.
  std::map<std::int64_t, std::int64_t> lookups_saved;
  for (std::int64_t id : waiting.runs) {
    const auto it = waiting.known_runs.find(id);
    if (it != waiting.known_runs.end() && it->second.active) ++lookups_saved[it->second.project_id];
  }
  for (std::int64_t id : waiting.plans) {
    const auto it = waiting.known_plans.find(id);
    if (it != waiting.known_plans.end() && it->second.active) {
      ++lookups_saved[it->second.project_id];
    }
  }
  std::set<std::int64_t> listed;
  auto list = [&](std::int64_t project) {
    if (waiting.listings.count(project) && listed.insert(project).second) {
      plan.listings.push_back(project);
    }
  };
  auto worth_listing = [&](std::int64_t project) {
    const auto size = waiting.listings.find(project);
    return size != waiting.listings.end() && lookups_saved[project] > listing_cost(size->second);
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
  for (std::int64_t id : waiting.runs) {
    const auto it = waiting.known_runs.find(id);
    if (it != waiting.known_runs.end() && it->second.active &&
        worth_listing(it->second.project_id)) {
      list(it->second.project_id);
    }
  }
  for (std::int64_t id : waiting.plans) {
    const auto it = waiting.known_plans.find(id);
    if (it != waiting.known_plans.end() && it->second.active &&
        worth_listing(it->second.project_id)) {
      list(it->second.project_id);
    }
  }

  auto by = [&](std::int64_t project, bool active) -> std::optional<std::int64_t> {
    if (active && listed.count(project)) return project;
    return std::nullopt;
  };
  for (std::int64_t id : waiting.plans) {
    const auto it = waiting.known_plans.find(id);
    if (it == waiting.known_plans.end()) {
      plan.unknown_plans.push_back({id, std::nullopt});
    } else {
      plan.plans.push_back({id, by(it->second.project_id, it->second.active)});
    }
  }
  for (std::int64_t id : waiting.runs) {
    const auto it = waiting.known_runs.find(id);
    if (it == waiting.known_runs.end()) {
      plan.unknown_runs.push_back({id, std::nullopt});
    } else {
      plan.runs.push_back({id, by(it->second.project_id, it->second.active)});
    }
  }
  return plan;
}

}  // namespace runsync
