// A fresh folder per test for database files, removed afterwards.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

namespace nightshift::store {

class TempDatabase : public ::testing::Test {
protected:
    void SetUp() override {
        static std::atomic<int> counter = 0;
        m_dir = std::filesystem::temp_directory_path() /
                ("nightshift_store_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        std::filesystem::remove_all(m_dir);
        std::filesystem::create_directories(m_dir);
    }
    void TearDown() override {
        std::error_code ignored;
        std::filesystem::remove_all(m_dir, ignored);
    }
    std::filesystem::path file(const std::string& name = "results.db") const { return m_dir / name; }

private:
    std::filesystem::path m_dir;
};

} // namespace nightshift::store
