#include <gtest/gtest.h>

#include "core/dtype.h"

TEST(DType, Sizes) {
    EXPECT_EQ(yiti::row_size(yiti::DType::Q4_K, 512), 288u);
    EXPECT_EQ(yiti::row_size(yiti::DType::F16, 10), 20u);
}
