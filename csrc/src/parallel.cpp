#include "s4op/parallel.h"

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace s4op::detail {
namespace {

struct Job {
  const std::function<void(int64_t)>* chunk;
  int64_t n;
  std::atomic<int64_t> next{0};  // next unclaimed chunk
  int64_t done = 0;              // guarded by m
  std::exception_ptr error;      // guarded by m
  std::mutex m;
  std::condition_variable finished;

  // Claims and runs one chunk; false when every chunk has been claimed.
  bool run_one() {
    const int64_t i = next.fetch_add(1);
    if (i >= n) return false;
    std::exception_ptr err;
    try {
      (*chunk)(i);
    } catch (...) {
      err = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(m);
    if (err && !error) error = err;
    if (++done == n) finished.notify_all();
    return true;
  }
};

class Pool {
 public:
  void run(int64_t n_chunks, const std::function<void(int64_t)>& chunk) {
    auto job = std::make_shared<Job>();
    job->chunk = &chunk;
    job->n = n_chunks;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Grow lazily to the largest parallelism ever requested (minus the caller).
      while (static_cast<int64_t>(workers_.size()) < n_chunks - 1) workers_.emplace_back([this] { work(); });
      queue_.push_back(job);
    }
    wake_.notify_all();
    while (job->run_one()) {
    }
    std::unique_lock<std::mutex> lock(job->m);
    job->finished.wait(lock, [&] { return job->done == job->n; });
    if (job->error) std::rethrow_exception(job->error);
  }

 private:
  void work() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return !queue_.empty(); });
        job = queue_.front();
      }
      while (job->run_one()) {
      }
      // Every chunk is claimed: take the job off the queue (unless another worker already did).
      std::lock_guard<std::mutex> lock(mu_);
      if (!queue_.empty() && queue_.front() == job) queue_.pop_front();
    }
  }

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::vector<std::thread> workers_;
};

std::atomic<const HostRuntime*> host_runtime{nullptr};

// Body handed to the host runtime: every thread of its team claims chunks until none is left.
void host_body(void* ctx) {
  auto* job = static_cast<Job*>(ctx);
  while (job->run_one()) {
  }
}

void run_on_host(const HostRuntime& rt, int64_t n_chunks, const std::function<void(int64_t)>& chunk) {
  Job job;
  job.chunk = &chunk;
  job.n = n_chunks;
  rt.fork_join(&host_body, &job, static_cast<unsigned>(n_chunks));
  // fork_join has joined its team, but a team smaller than asked (or none) still leaves work to us.
  while (job.run_one()) {
  }
  std::unique_lock<std::mutex> lock(job.m);
  job.finished.wait(lock, [&] { return job.done == job.n; });
  if (job.error) std::rethrow_exception(job.error);
}

// Deliberately never destroyed: workers sleep in the pool until the process ends, and no destructor
// has to join threads during interpreter shutdown.
Pool* pool_instance = nullptr;
std::once_flag pool_once;

Pool& pool() {
  std::call_once(pool_once, [] {
    pool_instance = new Pool();
    // A forked child (e.g. a DataLoader worker) inherits the pool but not its threads: give it a new one.
    // The host runtime's threads may not exist in the child either.
    pthread_atfork(nullptr, nullptr, [] {
      pool_instance = new Pool();
      host_runtime.store(nullptr);
    });
  });
  return *pool_instance;
}

}  // namespace

void run_chunks(int64_t n_chunks, const std::function<void(int64_t)>& chunk) {
  if (n_chunks <= 0) return;
  if (n_chunks == 1) {
    chunk(0);
    return;
  }
  pool();  // registers the fork handler before any host runtime can be used
  if (const HostRuntime* rt = host_runtime.load(std::memory_order_acquire)) {
    run_on_host(*rt, n_chunks, chunk);
    return;
  }
  pool().run(n_chunks, chunk);
}

}  // namespace s4op::detail

namespace s4op {

void set_host_runtime(const HostRuntime* rt) {
  detail::pool();
  detail::host_runtime.store(rt, std::memory_order_release);
}

const char* current_threading_backend() {
  const HostRuntime* rt = detail::host_runtime.load(std::memory_order_acquire);
  return rt ? rt->name : kThreadingBackend;
}

}  // namespace s4op
