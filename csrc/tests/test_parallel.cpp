// parallel_for on the persistent pool: coverage, determinism of chunking, exceptions, nesting, several
// callers at once, and a forked child.
#include "s4op/parallel.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "s4op/build_info.h"

namespace {

// S4OP_TEST_NO_FORK skips the forked-child checks: qemu-user aborts when a multithreaded guest forks
// (.ci/cpp-generic sets it for its aarch64 run).
bool fork_checks() {
  static const bool on = [] {
    const bool skip = std::getenv("S4OP_TEST_NO_FORK") != nullptr;
    if (skip) std::printf("forked-child checks skipped (S4OP_TEST_NO_FORK is set)\n");
    return !skip;
  }();
  return on;
}

void check_coverage(int threads, int64_t n) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  s4op::parallel_for(n, threads, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
  });
  for (auto& h : hits) S4OP_CHECK(h.load() == 1);
}

// A host runtime standing in for a framework's OpenMP: a fork-join over fresh std::threads, whose
// team may be smaller than asked (team_cap), as an OpenMP runtime's may be.
int team_cap = 1 << 30;
std::atomic<int> host_calls{0};
void fake_fork_join(void (*body)(void*), void* ctx, unsigned num_threads) {
  ++host_calls;
  const int team = std::min<int>(static_cast<int>(num_threads), team_cap);
  std::vector<std::thread> extra;
  for (int t = 1; t < team; ++t) extra.emplace_back(body, ctx);
  body(ctx);
  for (auto& t : extra) t.join();
}
const s4op::HostRuntime fake_runtime{"fake host", &fake_fork_join};

void check_host_runtime() {
  s4op::set_host_runtime(&fake_runtime);
  S4OP_CHECK(std::string(s4op::current_threading_backend()) == "fake host");
  for (int cap : {1, 2, 8}) {
    team_cap = cap;
    const int before = host_calls.load();
    for (int threads : {2, 3, 8}) {
      for (int64_t n : {1, 2, 7, 100}) check_coverage(threads, n);
    }
    S4OP_CHECK(host_calls.load() > before);
    bool caught = false;
    try {
      s4op::parallel_for(10, 3, [](int64_t b, int64_t) {
        if (b > 0) throw std::runtime_error("boom");
      });
    } catch (const std::runtime_error&) {
      caught = true;
    }
    S4OP_CHECK(caught);
  }
  team_cap = 1 << 30;
  // A forked child falls back to the built-in pool (the host's threads may not survive fork).
  if (fork_checks()) {
    const pid_t pid = fork();
    if (pid == 0) {
      std::atomic<int64_t> sum{0};
      const int before = host_calls.load();
      s4op::parallel_for(100, 2, [&](int64_t b, int64_t e) { sum += e - b; });
      const bool pool = std::string(s4op::current_threading_backend()) == s4op::kThreadingBackend;
      _exit(sum.load() == 100 && host_calls.load() == before && pool ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    S4OP_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  s4op::set_host_runtime(nullptr);
  S4OP_CHECK(std::string(s4op::current_threading_backend()) == s4op::kThreadingBackend);
}

}  // namespace

int main() {
  // Every index visited exactly once, for thread counts below, at and above n.
  for (int threads : {1, 2, 3, 8}) {
    for (int64_t n : {0, 1, 2, 7, 100}) check_coverage(threads, n);
  }
  // Chunk boundaries depend only on (n, threads).
  std::mutex m;
  std::vector<std::pair<int64_t, int64_t>> chunks;
  s4op::parallel_for(10, 3, [&](int64_t b, int64_t e) {
    std::lock_guard<std::mutex> lock(m);
    chunks.emplace_back(b, e);
  });
  std::sort(chunks.begin(), chunks.end());
  S4OP_CHECK((chunks == std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {3, 6}, {6, 10}}));
  // An exception in any chunk reaches the caller, and the pool keeps working afterwards.
  for (int rep = 0; rep < 3; ++rep) {
    bool caught = false;
    try {
      s4op::parallel_for(10, 2, [](int64_t b, int64_t) {
        if (b > 0) throw std::runtime_error("boom");
      });
    } catch (const std::runtime_error&) {
      caught = true;
    }
    S4OP_CHECK(caught);
  }
  check_coverage(2, 50);
  // Nested parallel_for cannot deadlock.
  std::atomic<int64_t> total{0};
  s4op::parallel_for(4, 4, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      s4op::parallel_for(8, 3, [&](int64_t bb, int64_t ee) { total += ee - bb; });
    }
  });
  S4OP_CHECK(total.load() == 32);
  // Several callers at once (the binding releases the GIL, so Python threads can do this).
  std::vector<std::thread> callers;
  std::atomic<int> ok{0};
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      for (int rep = 0; rep < 50; ++rep) {
        std::atomic<int64_t> sum{0};
        s4op::parallel_for(64, 2, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) sum += i;
        });
        if (sum.load() == 64 * 63 / 2) ++ok;
      }
    });
  }
  for (auto& t : callers) t.join();
  S4OP_CHECK(ok.load() == 200);
  // A forked child gets a working pool of its own.
  if (fork_checks()) {
    const pid_t pid = fork();
    if (pid == 0) {
      std::atomic<int64_t> sum{0};
      s4op::parallel_for(100, 2, [&](int64_t b, int64_t e) { sum += e - b; });
      _exit(sum.load() == 100 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    S4OP_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }

  check_host_runtime();
  check_coverage(2, 50);  // and the built-in pool works again afterwards

  const s4op::BuildInfo info = s4op::build_info();
  S4OP_CHECK(!info.compiler.empty());
  S4OP_CHECK(!info.simd.empty());
  S4OP_TEST_MAIN_END();
}
