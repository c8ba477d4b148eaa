// Table tests of the refresh planner (SPEC §4a "Refreshes are planned by cost").
#include "core/refresh_plan.h"

#include <gtest/gtest.h>

#include <string>

namespace runsync {
namespace {

using Ids = std::vector<std::int64_t>;

// Lookups as "id" (always looked up) or "id@project" (unless that listing shows it).
std::vector<std::string> render(const std::vector<Lookup>& lookups) {
  std::vector<std::string> out;
  for (const Lookup& l : lookups) {
    out.push_back(std::to_string(l.id) + (l.listed_by ? "@" + std::to_string(*l.listed_by) : ""));
  }
  return out;
}

// Project 1 lists 2,000 active runs (8 pages + get_plans = 9 requests);
// project 2 lists 10 (1 page + get_plans = 2 requests).
RefreshWaiting base() {
  RefreshWaiting w;
  w.listings = {{1, {2'000, 0}}, {2, {10, 0}}};
  return w;
}

void add_active_runs(RefreshWaiting& w, std::int64_t project, std::int64_t first, int n) {
  for (int i = 0; i < n; ++i) {
    w.runs.push_back(first + i);
    w.known_runs[first + i] = {project, std::nullopt, true};
  }
}

TEST(ListingCost, PagesOf250PlusGetPlansPlusOneGetPlanPerActivePlan) {
  struct Case {
    ListingSize size;
    std::int64_t cost;
  };
  for (const Case& c : std::vector<Case>{{{0, 0}, 2},
                                         {{1, 0}, 2},
                                         {{250, 0}, 2},
                                         {{251, 0}, 3},
                                         {{2'000, 0}, 9},
                                         {{2'000, 3}, 12},
                                         {{-5, -1}, 2}}) {
    EXPECT_EQ(listing_cost(c.size), c.cost)
        << c.size.active_runs << " runs, " << c.size.active_plans << " plans";
  }
}

TEST(PlanRefreshes, FewWaitingRunsEachGetTheirOwnGetRun) {
  RefreshWaiting w = base();
  add_active_runs(w, 1, 100, 9);  // 9 get_run cost no more than the 9-request listing
  const RefreshPlan p = plan_refreshes(w);
  EXPECT_TRUE(p.listings.empty());
  EXPECT_EQ(render(p.runs), (std::vector<std::string>{"100", "101", "102", "103", "104", "105",
                                                      "106", "107", "108"}));
}

TEST(PlanRefreshes, MoreWaitingRunsThanTheListingCostsAreServedByTheListing) {
  RefreshWaiting w = base();
  add_active_runs(w, 1, 100, 10);
  add_active_runs(w, 2, 500, 2);  // project 2: 2 runs against a 2-request listing
  const RefreshPlan p = plan_refreshes(w);
  EXPECT_EQ(p.listings, Ids{1});
  ASSERT_EQ(p.runs.size(), 12u);
  EXPECT_EQ(render(p.runs).front(), "100@1");
  EXPECT_EQ(render(p.runs)[9], "109@1");
  EXPECT_EQ(render(p.runs)[10], "500");
}

TEST(PlanRefreshes, CompletedRunsAreNotCountedAndAlwaysGetTheirOwnGetRun) {
  RefreshWaiting w = base();
  add_active_runs(w, 2, 500, 2);
  for (std::int64_t id = 600; id < 610; ++id) {
    w.runs.push_back(id);
    w.known_runs[id] = {2, std::nullopt, false};
  }
  RefreshPlan p = plan_refreshes(w);
  EXPECT_TRUE(p.listings.empty());
  EXPECT_EQ(p.runs.size(), 12u);
  add_active_runs(w, 2, 700, 1);  // 3 active runs now cost more than 2 requests
  p = plan_refreshes(w);
  EXPECT_EQ(p.listings, Ids{2});
  EXPECT_EQ(render(p.runs)[0], "500@2");
  EXPECT_EQ(render(p.runs)[2], "600");  // a completed run: the active listing does not show it
  EXPECT_EQ(render(p.runs).back(), "700@2");
}

TEST(PlanRefreshes, ActivePlansCountLikeRunsAndAreServedByTheListing) {
  RefreshWaiting w = base();
  add_active_runs(w, 2, 500, 1);
  w.plans = {40, 41};
  w.known_plans = {{40, {2, true}}, {41, {2, false}}};
  const RefreshPlan p = plan_refreshes(w);
  EXPECT_TRUE(p.listings.empty());  // 1 run + 1 active plan: 2 requests, as the listing
  w.plans.push_back(42);
  w.known_plans[42] = {2, true};
  const RefreshPlan q = plan_refreshes(w);
  EXPECT_EQ(q.listings, Ids{2});
  EXPECT_EQ(render(q.plans), (std::vector<std::string>{"40@2", "41", "42@2"}));
}

TEST(PlanRefreshes, ProjectHintsListConfiguredProjectsAndIgnoreOthers) {
  RefreshWaiting w = base();
  w.projects = {2, 99, 1};
  add_active_runs(w, 1, 100, 1);
  const RefreshPlan p = plan_refreshes(w);
  EXPECT_EQ(p.listings, (Ids{2, 1}));
  EXPECT_EQ(p.ignored_projects, Ids{99});
  EXPECT_EQ(render(p.runs), std::vector<std::string>{"100@1"});  // its project is listed anyway
}

TEST(PlanRefreshes, EveryProjectListsEachConfiguredProjectOnce) {
  RefreshWaiting w = base();
  w.projects = {2};
  w.every_project = true;
  EXPECT_EQ(plan_refreshes(w).listings, (Ids{2, 1}));
}

TEST(PlanRefreshes, UnknownIdsComeLastAndWaitForTheListingsOfThePass) {
  RefreshWaiting w = base();
  w.runs = {9'001, 9'002};  // hinted first, unknown to the mirror
  w.plans = {8'001};
  add_active_runs(w, 2, 500, 1);
  w.runs.push_back(9'003);
  const RefreshPlan p = plan_refreshes(w);
  EXPECT_TRUE(p.listings.empty());
  EXPECT_EQ(render(p.runs), std::vector<std::string>{"500"});
  EXPECT_EQ(render(p.unknown_plans), std::vector<std::string>{"8001"});
  EXPECT_EQ(render(p.unknown_runs), (std::vector<std::string>{"9001", "9002", "9003"}));
}

TEST(PlanRefreshes, UnknownIdsNeverTriggerAListing) {
  RefreshWaiting w = base();
  for (std::int64_t id = 9'000; id < 9'500; ++id) w.runs.push_back(id);
  const RefreshPlan p = plan_refreshes(w);
  EXPECT_TRUE(p.listings.empty());
  EXPECT_TRUE(p.runs.empty());
  EXPECT_EQ(p.unknown_runs.size(), 500u);
}

TEST(PlanRefreshes, RunsOfProjectsNotConfiguredAreLookedUpNotListed) {
  RefreshWaiting w = base();
  add_active_runs(w, 7, 100, 50);
  const RefreshPlan p = plan_refreshes(w);
  EXPECT_TRUE(p.listings.empty());
  EXPECT_EQ(p.runs.size(), 50u);
  EXPECT_FALSE(p.runs.front().listed_by.has_value());
}

TEST(PlanRefreshes, ListingsComeInTheOrderOfTheirOldestWaitingRun) {
  RefreshWaiting w = base();
  w.listings[3] = {1, 0};
  add_active_runs(w, 3, 300, 3);
  add_active_runs(w, 2, 200, 3);
  EXPECT_EQ(plan_refreshes(w).listings, (Ids{3, 2}));
}

}  // namespace
}  // namespace runsync
