#include "harness/cuda/driver_api.h"
#include "harness/cuda/device.h"

#include <gtest/gtest.h>

namespace nightshift::cuda {
namespace {

// On a machine without a driver (CI), everything must say so plainly rather
// than crash; on a GPU machine the driver loads.
TEST(DriverApi, AvailabilityIsConsistentAndExplained) {
    std::string why;
    bool available = driver_available(&why);
    if (available) {
        EXPECT_TRUE(why.empty());
        EXPECT_NO_THROW(driver());
        EXPECT_GE(device_count(), 0);
    } else {
        EXPECT_FALSE(why.empty());
        EXPECT_THROW(driver(), NoDriverError);
        try {
            Device device(0);
            FAIL() << "a device opened without a driver";
        } catch (const NoDriverError& e) {
            EXPECT_NE(std::string(e.what()).find("driver"), std::string::npos);
        }
    }
}

TEST(DriverApi, DescribesErrorCodesEvenWithoutADriver) {
    std::string text = describe(CUDA_ERROR_ILLEGAL_ADDRESS);
    EXPECT_FALSE(text.empty());
    if (driver_available()) EXPECT_NE(text.find("CUDA_ERROR_ILLEGAL_ADDRESS"), std::string::npos) << text;
    else EXPECT_NE(text.find(std::to_string(CUDA_ERROR_ILLEGAL_ADDRESS)), std::string::npos) << text;
}

TEST(DriverVersion, FormatsMajorMinor) {
    EXPECT_EQ(driver_version_string(13000), "13.0");
    EXPECT_EQ(driver_version_string(12080), "12.8");
}

} // namespace
} // namespace nightshift::cuda
