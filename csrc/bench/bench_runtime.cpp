// Latency of the torch-free runtime on an exported model, from C (no Python in the loop): median of repeated
// s4op_model_run calls on a fixed random input.
//   bench_runtime MODEL.s4m [batch] [len] [threads] [repeats]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "s4op/runtime.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_runtime MODEL.s4m [batch=1] [len=max] [threads=1] [repeats=500]\n");
    return 2;
  }
  const int64_t batch = argc > 2 ? std::atoll(argv[2]) : 1;
  int64_t len = argc > 3 ? std::atoll(argv[3]) : 0;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 1;
  const int repeats = argc > 5 ? std::atoi(argv[5]) : 500;
  char err[1024];
  s4op_model* m = nullptr;
  if (s4op_model_load(argv[1], batch, 0, threads, &m, err, sizeof err) != S4OP_OK) {
    std::fprintf(stderr, "%s\n", err);
    return 1;
  }
  s4op_model_info info;
  s4op_model_get_info(m, &info);
  if (len <= 0) len = info.max_len;
  std::mt19937 rng(0);
  std::vector<float> xf(static_cast<size_t>(batch * len * std::max<int64_t>(info.in_channels, 1)));
  std::vector<int64_t> xi(static_cast<size_t>(batch * len));
  std::normal_distribution<float> normal;
  for (float& v : xf) v = normal(rng);
  for (int64_t& v : xi) v = 1 + static_cast<int64_t>(rng() % static_cast<uint32_t>(std::max<int64_t>(info.vocab_size - 1, 1)));
  const void* x = info.tokens ? static_cast<const void*>(xi.data()) : static_cast<const void*>(xf.data());
  std::vector<float> logits(static_cast<size_t>(batch * info.num_classes));
  std::vector<double> t;
  for (int r = 0; r < repeats + 20; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    if (s4op_model_run(m, x, batch, len, nullptr, logits.data(), err, sizeof err) != S4OP_OK) {
      std::fprintf(stderr, "%s\n", err);
      return 1;
    }
    const auto t1 = std::chrono::steady_clock::now();
    if (r >= 20) t.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(t.begin(), t.end());
  std::printf("%s: batch %lld, len %lld, %d thread(s): median %.4f ms (p10 %.4f, p90 %.4f), active %lld/%lld\n",
              argv[1], static_cast<long long>(batch), static_cast<long long>(len), threads, t[t.size() / 2],
              t[t.size() / 10], t[t.size() * 9 / 10], static_cast<long long>(info.active_channels),
              static_cast<long long>(info.channels));
  s4op_model_free(m);
  return 0;
}
