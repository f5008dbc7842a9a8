// The runtime's C API on hand-written model files (the Python tests check whole exported models against
// PyTorch): a model whose output is known in closed form, and every way a file can be damaged, each a clear
// error code and message, never a crash; streaming against the batch run (an S4D model in closed form and an S4
// layer with and without its C_f entry).  Uses only runtime.h, as a C program would.
#include "s4op/runtime.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"

namespace {

// ---- A minimal writer of the format (s4op_kernels/export.py documents it).
struct Writer {
  std::vector<uint8_t> payload;
  uint32_t count = 0;
  void bytes(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    payload.insert(payload.end(), b, b + n);
  }
  template <class T>
  void le(T v) {
    for (size_t i = 0; i < sizeof(T); ++i) payload.push_back(static_cast<uint8_t>(static_cast<uint64_t>(v) >> (8 * i)));
  }
  void pad() {
    while (payload.size() % 8) payload.push_back(0);
  }
  void head(const std::string& name, uint8_t dtype, std::vector<uint64_t> shape) {
    le<uint16_t>(static_cast<uint16_t>(name.size()));
    bytes(name.data(), name.size());
    le<uint8_t>(dtype);
    le<uint8_t>(static_cast<uint8_t>(shape.size()));
    le<uint16_t>(0);
    for (uint64_t d : shape) le<uint64_t>(d);
    pad();
    ++count;
  }
  void i64(const std::string& name, int64_t v) {
    head(name, 2, {});
    le<uint64_t>(static_cast<uint64_t>(v));
  }
  void f32(const std::string& name, std::vector<uint64_t> shape, const std::vector<float>& v) {
    head(name, 1, std::move(shape));
    for (float x : v) {
      uint32_t bits;
      std::memcpy(&bits, &x, 4);
      le<uint32_t>(bits);
    }
    pad();
  }
  std::vector<uint8_t> file(uint32_t version = 1) const {
    uint32_t c = 0xFFFFFFFFu;
    for (uint8_t b : payload) {
      c ^= b;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    c ^= 0xFFFFFFFFu;
    std::vector<uint8_t> out = {'S', '4', 'O', 'P', 'M', 'D', 'L', 0};
    auto put = [&](uint64_t v, int n) {
      for (int i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
    };
    put(version, 4);
    put(0, 4);
    put(payload.size(), 8);
    put(c, 4);
    put(count, 4);
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
  }
};

// H = 2, one layer with every channel pruned (the SSM part is GELU) and a mixing with zero weights and bias
// b: the block adds b_a * sigmoid(b_g) per channel; no norm; C = 1 input channel; K = 1 class.
Writer identity_model() {
  Writer w;
  w.i64("arch.encoder", 0);
  w.i64("arch.in_channels", 1);
  w.i64("arch.d_model", 2);
  w.i64("arch.n_layers", 1);
  w.i64("arch.num_classes", 1);
  w.i64("arch.multilabel", 0);
  w.i64("arch.prenorm", 0);
  w.i64("arch.max_len", 8);
  w.f32("encoder.weight", {2, 1}, {1.f, -2.f});
  w.f32("encoder.bias", {2}, {0.5f, 0.f});
  w.i64("layers.0.kind", 0);
  w.i64("layers.0.norm", 0);
  w.head("layers.0.active", 2, {0});
  w.f32("layers.0.D", {0}, {});
  w.f32("layers.0.C", {0, 2, 2}, {});
  w.f32("layers.0.log_dt", {0}, {});
  w.f32("layers.0.log_A_real", {0, 2}, {});
  w.f32("layers.0.A_imag", {0, 2}, {});
  w.f32("layers.0.W", {4, 2}, std::vector<float>(8, 0.f));
  w.f32("layers.0.b", {4}, {1.f, 2.f, 0.f, 100.f});
  w.f32("decoder.weight", {1, 2}, {1.f, 1.f});
  w.f32("decoder.bias", {1}, {0.25f});
  return w;
}

// H = 2, one S4 layer with channel 1 active (N2 = 1, C-tilde for l_kernel = 8), LayerNorm after the block; C = 1
// input channel, K = 2 classes.  with_cf: the C_f entry streaming needs (any value here: the Python tests check
// exported S4 models' streams against PyTorch).
Writer s4_model(bool with_cf, float cf_re, float cf_im) {
  Writer w;
  w.i64("arch.encoder", 0);
  w.i64("arch.in_channels", 1);
  w.i64("arch.d_model", 2);
  w.i64("arch.n_layers", 1);
  w.i64("arch.num_classes", 2);
  w.i64("arch.multilabel", 0);
  w.i64("arch.prenorm", 0);
  w.i64("arch.max_len", 8);
  w.f32("encoder.weight", {2, 1}, {1.f, -0.5f});
  w.f32("encoder.bias", {2}, {0.1f, 0.2f});
  w.i64("layers.0.kind", 1);
  w.i64("layers.0.norm", 1);
  w.f32("layers.0.norm.weight", {2}, {1.5f, 0.5f});
  w.f32("layers.0.norm.bias", {2}, {0.f, 0.25f});
  w.f32("layers.0.norm.eps", {}, {1e-5f});
  w.head("layers.0.active", 2, {1});
  w.le<uint64_t>(1);
  w.f32("layers.0.D", {1}, {0.3f});
  w.f32("layers.0.log_dt", {1}, {std::log(0.05f)});
  w.f32("layers.0.A_real", {1, 1}, {std::log(0.5f)});
  w.f32("layers.0.A_imag", {1, 1}, {2.f});
  w.f32("layers.0.B", {1, 1, 2}, {1.f, 0.5f});
  w.f32("layers.0.P", {1, 1, 2}, {0.7f, -0.2f});
  w.f32("layers.0.C", {1, 1, 2}, {0.9f, 0.4f});
  if (with_cf) w.f32("layers.0.C_f", {1, 1, 2}, {cf_re, cf_im});
  w.i64("layers.0.l_kernel", 8);
  w.i64("layers.0.taps", 8);
  w.f32("layers.0.W", {4, 2}, {0.5f, -1.f, 0.25f, 2.f, 1.f, 0.f, -0.5f, 0.75f});
  w.f32("layers.0.b", {4}, {0.1f, -0.2f, 0.3f, 0.f});
  w.f32("decoder.weight", {2, 2}, {1.f, 2.f, -1.f, 0.5f});
  w.f32("decoder.bias", {2}, {0.25f, -0.5f});
  return w;
}

std::string write(const std::string& name, const std::vector<uint8_t>& blob) {
  const std::string path = "s4op_test_runtime_" + name + ".s4m";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f) {
    if (!blob.empty()) std::fwrite(blob.data(), 1, blob.size(), f);
    std::fclose(f);
  }
  return path;
}

int load(const std::vector<uint8_t>& blob, const char* name, std::string* msg) {
  const std::string path = write(name, blob);
  s4op_model* m = nullptr;
  char err[512];
  const int rc = s4op_model_load(path.c_str(), 1, 0, 1, &m, err, sizeof err);
  *msg = err;
  s4op_model_free(m);
  std::remove(path.c_str());
  return rc;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

int main() {
  {  // the closed-form model
    const std::string path = write("identity", identity_model().file());
    s4op_model* m = nullptr;
    char err[512];
    S4OP_CHECK(s4op_model_load(path.c_str(), 2, 0, 1, &m, err, sizeof err) == S4OP_OK);
    S4OP_CHECK(m != nullptr);
    s4op_model_info info;
    S4OP_CHECK(s4op_model_get_info(m, &info) == S4OP_OK);
    S4OP_CHECK(info.d_model == 2 && info.n_layers == 1 && info.active_channels == 0 && info.channels == 2);
    S4OP_CHECK(info.max_len == 8 && info.max_batch == 2 && info.tokens == 0 && info.in_channels == 1);
    const float x[2 * 3] = {0.f, 1.f, 2.f, -1.f, 0.5f, 4.f};  // B = 2, L = 3, C = 1
    const int64_t lengths[2] = {3, 2};
    float logits[2];
    S4OP_CHECK(s4op_model_run(m, x, 2, 3, lengths, logits, err, sizeof err) == S4OP_OK);
    for (int b = 0; b < 2; ++b) {
      // h = encoder(x) + b_a * sigmoid(b_g): channel 0 += 1 * sigmoid(0) = 0.5, channel 1 += 2 * sigmoid(100)
      double sum = 0;
      const int n = static_cast<int>(lengths[b]);
      for (int l = 0; l < n; ++l) {
        const double u = x[b * 3 + l];
        sum += (u + 0.5 + 0.5) + (-2.0 * u + 2.0);
      }
      S4OP_CHECK(std::fabs(logits[b] - (sum / n + 0.25)) < 1e-5);
    }
    // bad calls
    S4OP_CHECK(s4op_model_run(m, x, 3, 3, nullptr, logits, err, sizeof err) == S4OP_ERR_ARGUMENT);
    S4OP_CHECK(contains(err, "batch=3"));
    S4OP_CHECK(s4op_model_run(m, x, 1, 9, nullptr, logits, err, sizeof err) == S4OP_ERR_ARGUMENT);
    S4OP_CHECK(contains(err, "len=9"));
    const int64_t bad_lengths[1] = {4};
    S4OP_CHECK(s4op_model_run(m, x, 1, 3, bad_lengths, logits, err, sizeof err) == S4OP_ERR_ARGUMENT);
    S4OP_CHECK(s4op_model_run(m, nullptr, 1, 3, nullptr, logits, err, sizeof err) == S4OP_ERR_ARGUMENT);
    S4OP_CHECK(s4op_model_run(nullptr, x, 1, 3, nullptr, logits, err, sizeof err) == S4OP_ERR_ARGUMENT);
    s4op_model_free(m);
    S4OP_CHECK(s4op_model_load(path.c_str(), 1, 9, 1, &m, err, sizeof err) == S4OP_ERR_ARGUMENT);
    S4OP_CHECK(m == nullptr && contains(err, "longer than the file's kernels"));
    S4OP_CHECK(s4op_model_load(path.c_str(), 0, 0, 1, &m, err, sizeof err) == S4OP_ERR_ARGUMENT);
    S4OP_CHECK(s4op_model_load(path.c_str(), 1, 0, 0, &m, err, sizeof err) == S4OP_ERR_ARGUMENT);
    S4OP_CHECK(s4op_model_load(path.c_str(), 1, 0, 1, nullptr, err, sizeof err) == S4OP_ERR_ARGUMENT);
    std::remove(path.c_str());
  }
  {  // streaming the closed-form model: every prefix's logits equal the batch run's, and past max_len
    const std::string path = write("stream", identity_model().file());
    s4op_model* m = nullptr;
    char err[512];
    S4OP_CHECK(s4op_model_load(path.c_str(), 2, 0, 1, &m, err, sizeof err) == S4OP_OK);
    s4op_stream* st = nullptr;
    S4OP_CHECK(s4op_stream_open(m, 2, &st, err, sizeof err) == S4OP_OK && st != nullptr);
    float x[2 * 12];
    for (int i = 0; i < 24; ++i) x[i] = 0.25f * static_cast<float>(i % 7) - 0.6f;  // {B = 2, L = 12, C = 1}
    float logits[2], batch[2];
    S4OP_CHECK(s4op_stream_logits(st, logits, err, sizeof err) == S4OP_OK);
    S4OP_CHECK(std::fabs(logits[0] - 0.25f) < 1e-6);  // nothing pushed: the decoder of zero features
    for (int l = 0; l < 12; ++l) {
      const float sample[2] = {x[l], x[12 + l]};
      S4OP_CHECK(s4op_stream_push(st, sample, 1, err, sizeof err) == S4OP_OK);
      S4OP_CHECK(s4op_stream_logits(st, logits, err, sizeof err) == S4OP_OK);
      for (int b = 0; b < 2; ++b) {
        double sum = 0;  // as the closed form above: the mean over the first l + 1 positions
        for (int k = 0; k <= l; ++k) sum += (x[b * 12 + k] + 1.0) + (-2.0 * x[b * 12 + k] + 2.0);
        S4OP_CHECK(std::fabs(logits[b] - (sum / (l + 1) + 0.25)) < 1e-5);
      }
      if (l < 8) {  // a batch run of the first l + 1 samples (within max_len) agrees
        float xb[2 * 8];
        for (int b = 0; b < 2; ++b)
          for (int k = 0; k <= l; ++k) xb[b * (l + 1) + k] = x[b * 12 + k];
        S4OP_CHECK(s4op_model_run(m, xb, 2, l + 1, nullptr, batch, err, sizeof err) == S4OP_OK);
        S4OP_CHECK(std::fabs(batch[0] - logits[0]) < 1e-5 && std::fabs(batch[1] - logits[1]) < 1e-5);
      }
    }
    S4OP_CHECK(s4op_stream_samples(st) == 12);
    S4OP_CHECK(s4op_stream_reset(st) == S4OP_OK && s4op_stream_samples(st) == 0);
    S4OP_CHECK(s4op_stream_push(st, x, 0, err, sizeof err) == S4OP_OK);  // nothing
    S4OP_CHECK(s4op_stream_push(st, nullptr, 1, err, sizeof err) == S4OP_ERR_ARGUMENT);
    S4OP_CHECK(s4op_stream_push(st, x, -1, err, sizeof err) == S4OP_ERR_ARGUMENT);
    S4OP_CHECK(s4op_stream_logits(st, nullptr, err, sizeof err) == S4OP_ERR_ARGUMENT);
    S4OP_CHECK(s4op_stream_push(nullptr, x, 1, err, sizeof err) == S4OP_ERR_ARGUMENT);
    S4OP_CHECK(s4op_stream_samples(nullptr) == -1);
    s4op_stream_free(st);
    S4OP_CHECK(s4op_stream_open(m, 0, &st, err, sizeof err) == S4OP_ERR_ARGUMENT && st == nullptr);
    S4OP_CHECK(s4op_stream_open(nullptr, 1, &st, err, sizeof err) == S4OP_ERR_ARGUMENT);
    S4OP_CHECK(s4op_stream_open(m, 1, nullptr, err, sizeof err) == S4OP_ERR_ARGUMENT);
    s4op_model_free(m);
    std::remove(path.c_str());
  }
  {  // an S4 layer: without C_f the file runs in batch but refuses to stream, clearly; with it, it streams
    char err[512];
    const float x[3] = {0.5f, -1.f, 2.f};
    float logits[2];
    const std::string plain = write("s4_plain", s4_model(false, 0.f, 0.f).file());
    s4op_model* m = nullptr;
    S4OP_CHECK(s4op_model_load(plain.c_str(), 1, 0, 1, &m, err, sizeof err) == S4OP_OK);
    S4OP_CHECK(s4op_model_run(m, x, 1, 3, nullptr, logits, err, sizeof err) == S4OP_OK);
    s4op_stream* st = nullptr;
    S4OP_CHECK(s4op_stream_open(m, 1, &st, err, sizeof err) == S4OP_ERR_FILE && st == nullptr);
    S4OP_CHECK(contains(err, "C_f") && contains(err, "export the model again"));
    s4op_model_free(m);
    std::remove(plain.c_str());
    const std::string with_cf = write("s4_cf", s4_model(true, 0.8f, 0.3f).file());
    S4OP_CHECK(s4op_model_load(with_cf.c_str(), 1, 0, 1, &m, err, sizeof err) == S4OP_OK);
    S4OP_CHECK(s4op_stream_open(m, 1, &st, err, sizeof err) == S4OP_OK);
    S4OP_CHECK(s4op_stream_push(st, x, 3, err, sizeof err) == S4OP_OK);
    S4OP_CHECK(s4op_stream_logits(st, logits, err, sizeof err) == S4OP_OK);
    S4OP_CHECK(std::isfinite(logits[0]) && std::isfinite(logits[1]));
    s4op_stream_free(st);
    s4op_model_free(m);
    std::remove(with_cf.c_str());
  }
  {  // damaged files: every prefix of a valid file, one flipped bit, a later version, bad magic, no file
    const std::vector<uint8_t> good = identity_model().file();
    std::string msg;
    for (size_t n = 0; n < good.size(); n += 7) {
      std::vector<uint8_t> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
      S4OP_CHECK(load(cut, "cut", &msg) == S4OP_ERR_FILE);
    }
    std::vector<uint8_t> flipped = good;
    flipped[60] ^= 0x10;
    S4OP_CHECK(load(flipped, "flip", &msg) == S4OP_ERR_FILE && contains(msg, "CRC-32"));
    S4OP_CHECK(load(identity_model().file(2), "v2", &msg) == S4OP_ERR_FILE && contains(msg, "newer"));
    std::vector<uint8_t> magic = good;
    magic[0] = 'X';
    S4OP_CHECK(load(magic, "magic", &msg) == S4OP_ERR_FILE && contains(msg, "bad magic"));
    Writer w = identity_model();
    w.i64("arch.d_model", 3);  // a duplicate entry
    S4OP_CHECK(load(w.file(), "dup", &msg) == S4OP_ERR_FILE && contains(msg, "twice"));
    Writer big;
    big.head("huge", 1, {uint64_t{1} << 40, uint64_t{1} << 40});
    S4OP_CHECK(load(big.file(), "huge", &msg) == S4OP_ERR_FILE && contains(msg, "absurd shape"));
    s4op_model* m = nullptr;
    char err[64];
    S4OP_CHECK(s4op_model_load("/nonexistent/model.s4m", 1, 0, 1, &m, err, sizeof err) == S4OP_ERR_FILE);
    S4OP_CHECK(std::strlen(err) == 63);  // truncated to the buffer, NUL-terminated
  }
  S4OP_TEST_MAIN_END();
}
