#include <atomic>
#include <stdexcept>
#include <vector>

#include "check.h"
#include "s4op/build_info.h"
#include "s4op/parallel.h"

int main() {
  // Every index visited exactly once, for thread counts below, at and above n.
  for (int threads : {1, 2, 3, 8}) {
    for (int64_t n : {0, 1, 2, 7, 100}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      s4op::parallel_for(n, threads, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
      });
      for (auto& h : hits) S4OP_CHECK(h.load() == 1);
    }
  }
  // An exception in a worker reaches the caller.
  bool caught = false;
  try {
    s4op::parallel_for(10, 2, [](int64_t b, int64_t) {
      if (b > 0) throw std::runtime_error("boom");
    });
  } catch (const std::runtime_error&) {
    caught = true;
  }
  S4OP_CHECK(caught);
  const s4op::BuildInfo info = s4op::build_info();
  S4OP_CHECK(!info.compiler.empty());
  S4OP_CHECK(!info.simd.empty());
  S4OP_TEST_MAIN_END();
}
