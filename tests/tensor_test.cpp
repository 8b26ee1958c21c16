#include <gtest/gtest.h>

#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/tensor.hpp"

using namespace tapegrad;

TEST(Shape, NumelIsProductOfDims) {
  // 2*3*4*5 = 120; a 0-d shape holds one element.
  EXPECT_EQ(Shape({2, 3, 4, 5}).numel(), 120);
  EXPECT_EQ(Shape{}.numel(), 1);
  EXPECT_EQ(Shape({2, 0, 4}).numel(), 0);
}

TEST(Shape, OverflowingSizeThrowsLengthError) {
  // 2^32 * 2^32 = 2^64 does not fit in int64.
  EXPECT_THROW(Shape({index_t{1} << 32, index_t{1} << 32}), std::length_error);
  // 2^49 fits in int64 but exceeds the 2^48-element limit.
  EXPECT_THROW(Shape({index_t{1} << 25, index_t{1} << 24}), std::length_error);
}

TEST(Shape, NegativeDimensionThrows) { EXPECT_THROW(Shape({2, -1}), std::invalid_argument); }

TEST(Shape, PrintsAsBracketedList) {
  EXPECT_EQ(Shape({2, 3, 8, 8}).str(), "[2,3,8,8]");
  EXPECT_EQ(Shape{}.str(), "[]");
}

TEST(Tensor, RowMajorMultiIndex) {
  // offset(n,c,h,w) = ((n*C + c)*H + h)*W + w; for [2,3,4,5] at (1,2,3,4): ((1*3+2)*4+3)*5+4 = 119.
  Tensor<double> t(Shape{2, 3, 4, 5});
  t(1, 2, 3, 4) = 7.0;
  EXPECT_EQ(t[119], 7.0);
}

TEST(Tensor, DataSizeMismatchThrowsNamingTheShape) {
  try {
    Tensor<float> t(Shape{2, 3}, std::vector<float>(5));
    FAIL() << "expected a throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[2,3]"), std::string::npos) << e.what();
  }
}

TEST(Tensor, CastToFiftyDigitsIsExact) {
  // Every double is exactly representable in cpp_bin_float_50 (168-bit mantissa).
  Tensor<double> t(Shape{3}, std::vector<double>{0.1, -1e300, 3.0});
  auto t50 = t.cast<f50>();
  auto back = t50.cast<double>();
  EXPECT_EQ(back.vec(), t.vec());
}

TEST(Conv2dGeom, OutputSizeFollowsPyTorch) {
  // p = floor((8 + 2*1 - 2*(3-1) - 1)/2) + 1 = floor(5/2) + 1 = 3
  Conv2dParams prm{{2, 2}, {1, 1}, {2, 2}, 1};
  Shape x{2, 3, 8, 8}, w{4, 3, 3, 3};
  auto g = make_conv2d_geom(x, w, nullptr, prm);
  EXPECT_EQ(g.p, 3);
  EXPECT_EQ(g.q, 3);
  EXPECT_EQ(g.str(),
            "x[2,3,8,8] w[4,3,3,3] stride=(2,2) pad=(1,1) dilation=(2,2) groups=1 -> y[2,4,3,3]");
  EXPECT_EQ(g.descriptor(), "mb2ic3ih8iw8oc4kh3kw3sh2sw2ph1pw1dh2dw2g1");
}

TEST(Conv2dGeom, WrongInChannelsNamesExpectation) {
  Conv2dParams prm;
  try {
    make_conv2d_geom(Shape{2, 3, 8, 8}, Shape{16, 4, 3, 3}, nullptr, prm);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(),
                 "conv2d: w in-channels is 4, expected 3 = x channels / groups (x [2,3,8,8], w "
                 "[16,4,3,3])");
  }
}

TEST(Conv2dGeom, RejectsBadConfigurations) {
  Shape x{1, 4, 5, 5};
  auto bad = [&](Conv2dParams p, Shape w) {
    EXPECT_THROW(make_conv2d_geom(x, w, nullptr, p), std::invalid_argument) << w.str();
  };
  bad({{0, 1}, {0, 0}, {1, 1}, 1}, Shape{2, 4, 3, 3});   // zero stride
  bad({{1, 1}, {-1, 0}, {1, 1}, 1}, Shape{2, 4, 3, 3});  // negative pad
  bad({{1, 1}, {0, 0}, {1, 1}, 3}, Shape{3, 1, 3, 3});   // groups does not divide C
  bad({{1, 1}, {0, 0}, {1, 1}, 2}, Shape{3, 2, 3, 3});   // groups does not divide K
  bad({{1, 1}, {0, 0}, {1, 1}, 1}, Shape{2, 4, 6, 3});   // kernel taller than input
  bad({{1, 1}, {0, 0}, {3, 1}, 1}, Shape{2, 4, 3, 3});   // dilated span 7 > 5
  Shape b{3};
  EXPECT_THROW(make_conv2d_geom(x, Shape{2, 4, 3, 3}, &b, Conv2dParams{}), std::invalid_argument);
}

TEST(Pool2dGeom, RejectsPadOverHalfKernel) {
  Pool2dParams p{{2, 2}, {2, 2}, {2, 2}};
  EXPECT_THROW(make_pool2d_geom(Shape{1, 1, 4, 4}, p, "max_pool2d"), std::invalid_argument);
}
