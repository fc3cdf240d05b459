#include "harness/core/git.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <unistd.h>

namespace nightshift {
namespace {

namespace fs = std::filesystem;

class FakeCheckout : public ::testing::Test {
protected:
    void SetUp() override {
        m_root = fs::temp_directory_path() / ("nightshift_git_test_" + std::to_string(::getpid()));
        fs::remove_all(m_root);
        fs::create_directories(m_root / ".git" / "refs" / "heads");
    }
    void TearDown() override { fs::remove_all(m_root); }
    void write(const fs::path& relative, const std::string& text) {
        std::ofstream(m_root / relative) << text;
    }
    fs::path m_root;
};

const std::string k_a = "1111111111111111111111111111111111111111";
const std::string k_b = "2222222222222222222222222222222222222222";

TEST_F(FakeCheckout, ReadsTheBranchHeadLooseOrPacked) {
    write(".git/HEAD", "ref: refs/heads/main\n");
    EXPECT_EQ(git_commit(m_root), "unknown"); // the ref exists nowhere yet
    write(".git/packed-refs", "# pack-refs with: peeled\n" + k_b + " refs/heads/main\n");
    EXPECT_EQ(git_commit(m_root), k_b);
    write(".git/refs/heads/main", k_a + "\n"); // a loose ref wins over the packed one
    EXPECT_EQ(git_commit(m_root), k_a);
}

TEST_F(FakeCheckout, ADetachedHeadHoldsTheHash) {
    write(".git/HEAD", k_a + "\n");
    EXPECT_EQ(git_commit(m_root), k_a);
}

TEST(GitCommit, NoCheckoutIsUnknown) {
    EXPECT_EQ(git_commit(fs::temp_directory_path() / "nightshift_no_such_tree"), "unknown");
}

TEST(BuildCommit, IsAHashOrUnknown) {
    static const std::regex shape("[0-9a-f]{40}(-dirty|-unknown-state)?|unknown");
    EXPECT_TRUE(std::regex_match(build_commit(), shape)) << build_commit();
}

// The binary and the tree agree: one hash (the build's "-dirty" kept). They
// disagree (a GPU machine's copy of the tree with an older .git): both, the
// binary first, so nobody credits a number to the older commit.
TEST(DescribeCode, NamesTheTreeOnlyWhereItDiffers) {
    EXPECT_EQ(describe_code(k_a, k_a), k_a);
    EXPECT_EQ(describe_code(k_a + "-dirty", k_a), k_a + "-dirty");
    EXPECT_EQ(describe_code(k_a, k_b), k_a + " (binary); the tree's .git: " + k_b);
    EXPECT_EQ(describe_code(k_a + "-dirty", "unknown"), k_a + "-dirty (binary); the tree's .git: unknown");
}

} // namespace
} // namespace nightshift
