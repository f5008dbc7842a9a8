// Minimal test harness for the torch-free core (no third-party test framework needed to cross-build).
#pragma once

#include <cstdio>
#include <cstdlib>

namespace s4op_test {
inline int& failures() {
  static int n = 0;
  return n;
}
}  // namespace s4op_test

#define S4OP_CHECK(cond)                                                   \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      ++s4op_test::failures();                                             \
    }                                                                      \
  } while (0)

#define S4OP_TEST_MAIN_END()                                                     \
  do {                                                                           \
    if (s4op_test::failures()) {                                                 \
      std::fprintf(stderr, "%d check(s) failed\n", s4op_test::failures());     \
      return EXIT_FAILURE;                                                       \
    }                                                                            \
    std::printf("ok\n");                                                         \
    return EXIT_SUCCESS;                                                         \
  } while (0)
