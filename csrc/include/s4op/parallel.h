// The one threading primitive of the core.  Kernels own no thread pool: the caller says how many
// threads to use (the Python layer passes torch.get_num_threads()), so the core honours the
// embedding framework's setting and never competes with a second OpenMP runtime.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace s4op {

inline constexpr const char* kThreadingBackend = "std::thread";

// Calls fn(begin, end) over disjoint chunks that cover [0, n), on at most num_threads threads (the
// calling thread is one of them).  Chunks are contiguous and their boundaries depend only on
// (n, num_threads), so results do not depend on scheduling.  The first exception thrown by any
// chunk is rethrown in the caller after all threads have joined.
template <typename Fn>
void parallel_for(int64_t n, int num_threads, Fn&& fn) {
  if (n <= 0) return;
  const int64_t t = std::max<int64_t>(1, std::min<int64_t>(num_threads, n));
  if (t == 1) {
    fn(int64_t{0}, n);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
  auto run = [&](int64_t i) {
    const int64_t begin = n * i / t, end = n * (i + 1) / t;
    try {
      fn(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(t - 1));
  for (int64_t i = 1; i < t; ++i) workers.emplace_back(run, i);
  run(0);
  for (auto& w : workers) w.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace s4op
