// The one threading primitive of the core.  Kernels own no threads: the caller says how many threads to
// use (the Python layer passes torch.get_num_threads()), so the core honours the embedding framework's
// setting.
//
// Where the work runs:
//  - by default on a small persistent pool (plain std::thread workers sleeping on a condition variable);
//  - or, when the embedding framework installs one with set_host_runtime(), on the framework's own
//    threads.  The Python binding installs torch's OpenMP runtime: torch's OpenMP workers keep spinning
//    on the other cores for a while after each torch op, so a separate pool's worker would have to
//    fight them for a core between torch ops; handing the parallel section to those same spinning
//    workers removes the contention.  The core itself neither links nor knows OpenMP.
#pragma once

#include <cstdint>
#include <functional>

namespace s4op {

inline constexpr const char* kThreadingBackend = "std::thread pool";

// A framework's fork-join primitive: run body(ctx) on up to num_threads threads (the caller being one
// of them) and return when all have finished.  body never throws.  Any team size >= 1 is correct.
struct HostRuntime {
  const char* name;
  void (*fork_join)(void (*body)(void*), void* ctx, unsigned num_threads);
};

// Installs rt (which must outlive its use; nullptr restores the built-in pool).  Thread-safe.  A forked
// child process always falls back to the built-in pool, since a host runtime's threads may not survive
// fork.
void set_host_runtime(const HostRuntime* rt);
// Name of what parallel_for currently runs on: kThreadingBackend or the host runtime's name.
const char* current_threading_backend();

namespace detail {
// Runs chunk(i) for every i in [0, n_chunks) on at most n_chunks threads, the caller being one of them.
// Safe to call from several threads at once and from inside a chunk (the caller claims whatever no
// worker has started, so nesting cannot deadlock).  Rethrows the first exception a chunk threw.
void run_chunks(int64_t n_chunks, const std::function<void(int64_t)>& chunk);
}  // namespace detail

// Calls fn(begin, end) over disjoint contiguous chunks covering [0, n), on at most num_threads threads.
// Chunk boundaries depend only on (n, num_threads), never on scheduling, so a kernel whose per-index
// arithmetic is independent of its chunk gives identical results for any thread count.
template <typename Fn>
void parallel_for(int64_t n, int num_threads, Fn&& fn) {
  if (n <= 0) return;
  const int64_t t = num_threads < 1 ? 1 : (num_threads < n ? num_threads : n);
  if (t == 1) {
    fn(int64_t{0}, n);
    return;
  }
  detail::run_chunks(t, [&](int64_t i) { fn(n * i / t, n * (i + 1) / t); });
}

}  // namespace s4op
