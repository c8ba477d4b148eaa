// The Store as the owner of the writer connection and its transactions.
#include "storage/store.h"

#include <gtest/gtest.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include "support/storage_fixtures.h"
#include "support/temp_dir.h"

namespace runsync {
namespace {

using namespace runsync::testing;  // TempDir and the storage fixtures

TEST(Store, SplitsCommitAndSyncOnlyWhenFullAndCheckpointedElsewhere) {
  TempDir dir;
  EXPECT_FALSE(open_store(dir.file("a.db"))->split_commit_sync().is_ok());  // auto checkpoint
  OpenOptions normal;
  normal.durability = Durability::kNormal;
  normal.auto_checkpoint = false;
  auto store = Store::open(dir.file("b.db"), normal);
  ASSERT_TRUE(store.is_ok());
  EXPECT_FALSE(store.value()->split_commit_sync().is_ok());
  OpenOptions full;
  full.auto_checkpoint = false;
  store = Store::open(dir.file("c.db"), full);
  ASSERT_TRUE(store.is_ok());
  auto sync = store.value()->split_commit_sync();
  ASSERT_TRUE(sync.is_ok()) << sync.message();
  EXPECT_TRUE(sync.value()->sync().is_ok());
}

}  // namespace
}  // namespace runsync
