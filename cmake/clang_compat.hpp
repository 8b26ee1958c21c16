// Force-included (-include) into clang builds only (the tsan preset): GCC's two-argument
// __builtin_shuffle(v, mask), which src/kernels/fast_gemm.cpp uses for its lane tree, does not
// exist in clang 14. This defines it as the same permutation, element by element
// (r[i] = v[mask[i]], as GCC documents it), as a statement expression so that no function
// call (and no vector ABI question) is involved. Remove it once fast_gemm.cpp no longer uses
// the GCC-only builtin.
#pragma once
#if defined(__clang__) && defined(__cplusplus)
#define __builtin_shuffle(v, m)                                                   \
  ({                                                                              \
    const auto tg_v_ = (v);                                                       \
    const auto tg_m_ = (m);                                                       \
    auto tg_r_ = tg_v_;                                                           \
    for (int tg_i_ = 0; tg_i_ < static_cast<int>(sizeof(tg_v_) / sizeof(tg_v_[0])); ++tg_i_) \
      tg_r_[tg_i_] = tg_v_[tg_m_[tg_i_]];                                         \
    tg_r_;                                                                        \
  })
#endif
