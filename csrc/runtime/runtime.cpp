// The torch-free runtime (include/s4op/runtime.h): the model file reader and the classifier's forward pass,
// over the core's kernels (s4d_kernel / dplr_conv_spectrum at load, sparse_fftconv with its GELU epilogue and
// glu_mix with the residual add fused per block at run time).
#include "s4op/runtime.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "s4op/block_ops.h"
#include "s4op/dplr_kernel.h"
#include "s4op/fft.h"
#include "s4op/glu_mix.h"
#include "s4op/s4d_kernel.h"
#include "s4op/sparse_fftconv.h"
#include "s4op/ssm_step.h"

namespace {

constexpr char kMagic[8] = {'S', '4', 'O', 'P', 'M', 'D', 'L', '\0'};
constexpr uint32_t kFormatVersion = 1;
constexpr int64_t kHeaderBytes = 32;
// Sizes past these are refused as corrupt before anything is allocated from them.
constexpr int64_t kMaxDim = int64_t{1} << 31;
constexpr int64_t kMaxChannels = int64_t{1} << 16;
constexpr int64_t kMaxLayers = 1 << 12;
constexpr int64_t kMaxLen = int64_t{1} << 24;

struct FileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ArgError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// ---- Little-endian reads that never run past the buffer.
struct Reader {
  const uint8_t* p;
  int64_t size, pos = 0;
  void need(int64_t n, const std::string& what) const {
    if (n < 0 || n > size - pos) throw FileError("truncated: " + what + " runs past the end of the payload");
  }
  template <class T>
  T get(const std::string& what) {
    need(sizeof(T), what);
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<uint64_t>(p[pos + i]) << (8 * i));
    pos += sizeof(T);
    return v;
  }
};

uint32_t crc32(const uint8_t* data, int64_t n) {
  static const auto table = [] {
    std::vector<uint32_t> t(256);
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (int64_t i = 0; i < n; ++i) c = table[(c ^ data[i]) & 0xFFu] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

struct Entry {
  int dtype = 0;  // 1 float32, 2 int64
  std::vector<int64_t> shape;
  std::vector<float> f;
  std::vector<int64_t> i;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

std::map<std::string, Entry> parse(const std::vector<uint8_t>& blob) {
  if (static_cast<int64_t>(blob.size()) < kHeaderBytes) {
    throw FileError("truncated: " + std::to_string(blob.size()) + " bytes, shorter than the 32-byte header");
  }
  if (std::memcmp(blob.data(), kMagic, 8) != 0) throw FileError("not an s4op model file (bad magic)");
  Reader h{blob.data(), kHeaderBytes, 8};
  const uint32_t version = h.get<uint32_t>("version"), flags = h.get<uint32_t>("flags");
  const uint64_t size = h.get<uint64_t>("size");
  const uint32_t crc = h.get<uint32_t>("crc"), count = h.get<uint32_t>("count");
  if (version > kFormatVersion) {
    throw FileError("format version " + std::to_string(version) + " is newer than this runtime reads (1 to " +
                    std::to_string(kFormatVersion) + "); use a newer s4op runtime");
  }
  if (version < 1) throw FileError("format version 0 is invalid");
  if (flags != 0) throw FileError("unknown flags " + std::to_string(flags));
  if (size != blob.size() - kHeaderBytes) {
    throw FileError("truncated or padded: the header says " + std::to_string(size) + " payload bytes, the file has " +
                    std::to_string(blob.size() - kHeaderBytes));
  }
  const uint8_t* payload = blob.data() + kHeaderBytes;
  if (crc32(payload, static_cast<int64_t>(size)) != crc) {
    throw FileError("corrupted: the payload's CRC-32 does not match the header");
  }
  std::map<std::string, Entry> out;
  Reader r{payload, static_cast<int64_t>(size)};
  for (uint32_t k = 0; k < count; ++k) {
    const std::string at = "entry " + std::to_string(k);
    const uint16_t n = r.get<uint16_t>(at);
    r.need(n, at + "'s name");
    if (n == 0) throw FileError(at + ": empty name");
    std::string name(reinterpret_cast<const char*>(payload + r.pos), n);
    r.pos += n;
    Entry e;
    e.dtype = r.get<uint8_t>(name);
    const int ndim = r.get<uint8_t>(name);
    if (r.get<uint16_t>(name) != 0 || (e.dtype != 1 && e.dtype != 2) || ndim > 4) {
      throw FileError("entry '" + name + "': bad dtype code " + std::to_string(e.dtype) + " or ndim " +
                      std::to_string(ndim));
    }
    int64_t numel = 1;
    for (int d = 0; d < ndim; ++d) {
      const uint64_t dim = r.get<uint64_t>(name);
      if (dim > static_cast<uint64_t>(kMaxDim) || (dim > 0 && numel > kMaxDim / static_cast<int64_t>(dim))) {
        throw FileError("entry '" + name + "': absurd shape");
      }
      e.shape.push_back(static_cast<int64_t>(dim));
      numel *= static_cast<int64_t>(dim);
    }
    r.pos += (8 - r.pos % 8) % 8;
    const int64_t bytes = numel * (e.dtype == 1 ? 4 : 8);
    r.need(bytes, "entry '" + name + "''s data");
    if (e.dtype == 1) {
      e.f.resize(static_cast<size_t>(numel));
      for (int64_t j = 0; j < numel; ++j) {
        uint32_t bits = 0;
        for (int b = 0; b < 4; ++b) bits |= static_cast<uint32_t>(payload[r.pos + 4 * j + b]) << (8 * b);
        std::memcpy(&e.f[static_cast<size_t>(j)], &bits, 4);
      }
    } else {
      e.i.resize(static_cast<size_t>(numel));
      for (int64_t j = 0; j < numel; ++j) {
        uint64_t bits = 0;
        for (int b = 0; b < 8; ++b) bits |= static_cast<uint64_t>(payload[r.pos + 8 * j + b]) << (8 * b);
        e.i[static_cast<size_t>(j)] = static_cast<int64_t>(bits);
      }
    }
    r.pos += bytes + (8 - bytes % 8) % 8;
    if (r.pos > r.size) throw FileError("truncated: entry '" + name + "''s padding");
    if (!out.emplace(name, std::move(e)).second) throw FileError("entry '" + name + "' appears twice");
  }
  if (r.pos != r.size) throw FileError(std::to_string(r.size - r.pos) + " bytes after the last entry");
  return out;
}

// ---- Typed access to the entries, each check naming the entry.
struct Entries {
  std::map<std::string, Entry> map;
  const Entry& get(const std::string& name, int dtype, std::vector<int64_t> shape) const {
    auto it = map.find(name);
    if (it == map.end()) throw FileError("missing entry '" + name + "'");
    const Entry& e = it->second;
    if (e.dtype != dtype || e.shape != shape) {
      std::string want, got;
      for (int64_t d : shape) want += std::to_string(d) + ",";
      for (int64_t d : e.shape) got += std::to_string(d) + ",";
      throw FileError("entry '" + name + "': expected " + (dtype == 1 ? "float32" : "int64") + " of shape (" + want +
                      "), got " + (e.dtype == 1 ? "float32" : "int64") + " of shape (" + got + ")");
    }
    return e;
  }
  bool has(const std::string& name) const { return map.count(name) != 0; }
  int64_t scalar(const std::string& name, int64_t lo, int64_t hi) const {
    const int64_t v = get(name, 2, {}).i[0];
    if (v < lo || v > hi) {
      throw FileError("entry '" + name + "' = " + std::to_string(v) + " is outside [" + std::to_string(lo) + ", " +
                      std::to_string(hi) + "]");
    }
    return v;
  }
  std::vector<float> floats(const std::string& name, std::vector<int64_t> shape) const {
    return get(name, 1, std::move(shape)).f;
  }
  int64_t rows(const std::string& name) const {  // the first dim of an int64 vector entry
    auto it = map.find(name);
    if (it == map.end()) throw FileError("missing entry '" + name + "'");
    if (it->second.dtype != 2 || it->second.shape.size() != 1) throw FileError("entry '" + name + "': expected int64 (A,)");
    return it->second.shape[0];
  }
};

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  if (a < 0 || b < 0 || (b > 0 && a > std::numeric_limits<int64_t>::max() / b)) {
    throw ArgError(std::string(what) + ": sizes overflow");
  }
  return a * b;
}

struct Layer {
  int kind = 0;  // 0 S4D, 1 S4
  int norm = 0;  // 0 none, 1 LayerNorm over channels, 2 per-channel affine
  float eps = 1e-5f;
  std::vector<float> norm_w, norm_b, D, mix;  // mix: glu_mix_pack'ed W, b
  std::vector<int64_t> active;
  std::vector<std::complex<float>> spectra;  // {A, n_fft / 2 + 1}
  // The recurrent step (streaming): ssm_step's coefficients, step_fields 0 when the file cannot stream this
  // layer (an S4 layer exported without C_f).
  int step_fields = 0;
  int64_t N2 = 0;
  std::vector<float> step_modes, step_scalars;  // {A, step_fields, 2, N2}, {A, 3}
};

}  // namespace

struct s4op_model {
  int64_t tokens = 0, C = 0, V = 0, H = 0, K = 0, multilabel = 0, prenorm = 0, file_max_len = 0;
  int64_t max_len = 0, max_batch = 0, n_fft = 0;
  int threads = 1;
  std::vector<float> enc_w, enc_b, dec_w, dec_b;
  std::vector<Layer> layers;
  // The arena: h (the residual stream), t (the normalized input of a prenorm block), y (the SSM output),
  // the pooling's mask of valid positions, pooled features, the encoder's transposed input.
  std::vector<float> h, t, y, mask, pooled, ut;
  std::vector<char> conv_scratch;  // sparse_fftconv's buffers: a run allocates nothing
  int64_t weight_bytes = 0;
};

namespace {

void load_layer(s4op_model& m, const Entries& e, int64_t i) {
  const std::string p = "layers." + std::to_string(i) + ".";
  const int64_t H = m.H;
  Layer L;
  L.kind = static_cast<int>(e.scalar(p + "kind", 0, 1));
  L.norm = static_cast<int>(e.scalar(p + "norm", 0, 2));
  if (L.norm != 0) {
    L.norm_w = e.floats(p + "norm.weight", {H});
    L.norm_b = e.floats(p + "norm.bias", {H});
  }
  if (L.norm == 1) {
    L.eps = e.get(p + "norm.eps", 1, {}).f[0];
    if (!(L.eps > 0.f) || !std::isfinite(L.eps)) throw FileError("entry '" + p + "norm.eps' must be a positive number");
  }
  const int64_t A = e.rows(p + "active");
  if (A > H) throw FileError("entry '" + p + "active' has " + std::to_string(A) + " channels, more than H");
  L.active = e.get(p + "active", 2, {A}).i;
  for (int64_t j = 0; j < A; ++j) {
    if (L.active[j] < 0 || L.active[j] >= H || (j > 0 && L.active[j] <= L.active[j - 1])) {
      throw FileError("entry '" + p + "active': channels must be increasing and in [0, H)");
    }
  }
  L.D = e.floats(p + "D", {A});
  const int64_t F = m.n_fft / 2 + 1;
  L.spectra.resize(static_cast<size_t>(checked_mul(A, F, "spectra")));
  if (A > 0) {
    std::vector<int64_t> rows(static_cast<size_t>(A));
    for (int64_t j = 0; j < A; ++j) rows[j] = j;
    const std::string cname = p + "C";
    auto cit = e.map.find(cname);
    if (cit == e.map.end() || cit->second.shape.size() != 3 || cit->second.shape[1] < 1) {
      throw FileError("entry '" + cname + "': expected float32 (A, N2, 2)");
    }
    const int64_t N2 = cit->second.shape[1];
    const auto C = e.floats(cname, {A, N2, 2});
    const auto log_dt = e.floats(p + "log_dt", {A});
    float* out = reinterpret_cast<float*>(L.spectra.data());
    L.N2 = N2;
    if (L.kind == 0) {
      const auto log_A_real = e.floats(p + "log_A_real", {A, N2});
      const auto A_imag = e.floats(p + "A_imag", {A, N2});
      L.step_fields = s4op::cpu::kStepFieldsDiag;
      L.step_modes.resize(static_cast<size_t>(checked_mul(A, 2 * L.step_fields * N2, "step coefficients")));
      L.step_scalars.resize(static_cast<size_t>(A * s4op::cpu::kStepScalars));
      s4op::cpu::s4d_step_setup_f32(C.data(), log_dt.data(), log_A_real.data(), A_imag.data(), L.D.data(), A, N2,
                                    rows.data(), A, L.step_modes.data(), L.step_scalars.data());
      const int64_t T = m.file_max_len;
      std::vector<float> K(static_cast<size_t>(checked_mul(A, T, "kernels")));
      s4op::cpu::s4d_kernel_f32(C.data(), log_dt.data(), log_A_real.data(), A_imag.data(), A, N2, rows.data(), A, T,
                                K.data(), m.threads);
      auto plan = s4op::cpu::get_real_fft<float>(m.n_fft);
      std::vector<float> work(static_cast<size_t>(plan->work_size()));
      for (int64_t j = 0; j < A; ++j) plan->forward(K.data() + j * T, T, L.spectra.data() + j * F, work.data());
    } else {
      const int64_t M = e.scalar(p + "l_kernel", 1, kMaxLen);
      const int64_t taps = e.scalar(p + "taps", 1, std::min(M, m.file_max_len));
      const auto A_real = e.floats(p + "A_real", {A, N2}), A_imag = e.floats(p + "A_imag", {A, N2});
      const auto Bv = e.floats(p + "B", {A, N2, 2}), Pv = e.floats(p + "P", {A, N2, 2});
      if (e.has(p + "C_f")) {
        const auto C_f = e.floats(p + "C_f", {A, N2, 2});
        L.step_fields = s4op::cpu::kStepFieldsDplr;
        L.step_modes.resize(static_cast<size_t>(checked_mul(A, 2 * L.step_fields * N2, "step coefficients")));
        L.step_scalars.resize(static_cast<size_t>(A * s4op::cpu::kStepScalars));
        s4op::cpu::dplr_step_setup_f32(log_dt.data(), A_real.data(), A_imag.data(), Bv.data(), Pv.data(), C_f.data(),
                                       L.D.data(), A, N2, rows.data(), A, L.step_modes.data(), L.step_scalars.data());
      }
      if (s4op::cpu::next_fast_size(M) == M) {
        s4op::cpu::dplr_conv_spectrum_f32(log_dt.data(), A_real.data(), A_imag.data(), Bv.data(), Pv.data(), C.data(),
                                          A, N2, rows.data(), A, M, taps, m.n_fft, out, m.threads);
      } else {
        // A kernel length the core's FFT does not take (the reference's l_kernel follows the first input's
        // length): the spectrum at the M-th roots of unity, its inverse DFT in double for the first `taps`
        // taps (once, at load), then the convolution's spectrum.
        const int64_t bins = M / 2 + 1;
        std::vector<float> kf(static_cast<size_t>(checked_mul(A, 2 * bins, "spectra")));
        s4op::cpu::dplr_spectrum_f32(log_dt.data(), A_real.data(), A_imag.data(), Bv.data(), Pv.data(), C.data(), A,
                                     N2, rows.data(), A, M, kf.data(), m.threads);
        auto plan = s4op::cpu::get_real_fft<float>(m.n_fft);
        std::vector<float> work(static_cast<size_t>(plan->work_size())), K(static_cast<size_t>(taps));
        const double two_pi_over_m = 2.0 * 3.14159265358979323846 / static_cast<double>(M);
        for (int64_t j = 0; j < A; ++j) {
          const float* X = kf.data() + j * 2 * bins;
          for (int64_t t = 0; t < taps; ++t) {
            double acc = X[0];
            for (int64_t k = 1; k < bins; ++k) {
              const double w = 2.0 * (M % 2 == 0 && k == M / 2 ? 0.5 : 1.0);
              const double ang = two_pi_over_m * static_cast<double>((k * t) % M);
              acc += w * (X[2 * k] * std::cos(ang) - X[2 * k + 1] * std::sin(ang));
            }
            K[t] = static_cast<float>(acc / static_cast<double>(M));
          }
          plan->forward(K.data(), taps, L.spectra.data() + j * F, work.data());
        }
      }
    }
  }
  const auto W = e.floats(p + "W", {2 * H, H});
  const auto b = e.floats(p + "b", {2 * H});
  L.mix.resize(static_cast<size_t>(s4op::cpu::glu_mix_packed_size(H, H)));
  s4op::cpu::glu_mix_pack(W.data(), b.data(), H, H, L.mix.data());
  if (A == 0) L.step_fields = s4op::cpu::kStepFieldsDiag;  // no channel to step: streams as identity
  m.weight_bytes += 4 * static_cast<int64_t>(L.norm_w.size() + L.norm_b.size() + L.D.size() + L.mix.size() +
                                             L.step_modes.size() + L.step_scalars.size()) +
                    8 * static_cast<int64_t>(L.spectra.size() + L.active.size());
  m.layers.push_back(std::move(L));
}

std::unique_ptr<s4op_model> load(const char* path, int64_t max_batch, int64_t max_len, int num_threads) {
  if (path == nullptr) throw ArgError("path must not be NULL");
  if (max_batch < 1) throw ArgError("max_batch must be >= 1, got " + std::to_string(max_batch));
  if (max_len < 0) throw ArgError("max_len must be >= 0 (0: the file's), got " + std::to_string(max_len));
  if (num_threads < 1) throw ArgError("num_threads must be >= 1, got " + std::to_string(num_threads));
  std::ifstream f(path, std::ios::binary);
  if (!f) throw FileError(std::string("cannot open ") + path);
  std::vector<uint8_t> blob((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  Entries e{parse(blob)};
  auto m = std::make_unique<s4op_model>();
  m->threads = num_threads;
  const int64_t enc = e.scalar("arch.encoder", 0, 1);
  m->tokens = enc;
  m->H = e.scalar("arch.d_model", 1, kMaxChannels);
  const int64_t n_layers = e.scalar("arch.n_layers", 0, kMaxLayers);
  m->K = e.scalar("arch.num_classes", 1, kMaxChannels);
  m->multilabel = e.scalar("arch.multilabel", 0, 1);
  m->prenorm = e.scalar("arch.prenorm", 0, 1);
  m->file_max_len = e.scalar("arch.max_len", 1, kMaxLen);
  if (max_len > m->file_max_len) {
    throw ArgError("max_len=" + std::to_string(max_len) + " is longer than the file's kernels (exported for " +
                   std::to_string(m->file_max_len) + "); export again with a larger --max-len");
  }
  m->max_len = max_len == 0 ? m->file_max_len : max_len;
  m->max_batch = max_batch;
  m->n_fft = s4op::cpu::next_fast_size(2 * m->file_max_len - 1);
  if (enc == 1) {
    m->V = e.scalar("arch.vocab_size", 1, kMaxDim);
    m->enc_w = e.floats("embedding.weight", {m->V, m->H});
  } else {
    m->C = e.scalar("arch.in_channels", 1, kMaxChannels);
    m->enc_w = e.floats("encoder.weight", {m->H, m->C});
    m->enc_b = e.floats("encoder.bias", {m->H});
  }
  m->dec_w = e.floats("decoder.weight", {m->K, m->H});
  m->dec_b = e.floats("decoder.bias", {m->K});
  m->weight_bytes = 4 * static_cast<int64_t>(m->enc_w.size() + m->enc_b.size() + m->dec_w.size() + m->dec_b.size());
  for (int64_t i = 0; i < n_layers; ++i) load_layer(*m, e, i);
  const int64_t BHL = checked_mul(checked_mul(max_batch, m->H, "arena"), m->max_len, "arena");
  checked_mul(BHL, 12, "arena");
  m->h.resize(static_cast<size_t>(BHL));
  m->y.resize(static_cast<size_t>(BHL));
  if (m->prenorm) m->t.resize(static_cast<size_t>(BHL));
  m->mask.resize(static_cast<size_t>(m->max_len));
  m->ut.resize(static_cast<size_t>(checked_mul(m->C, m->max_len, "arena")));
  m->pooled.resize(static_cast<size_t>(checked_mul(max_batch, m->H, "arena")));
  m->conv_scratch.resize(static_cast<size_t>(s4op::cpu::sparse_fftconv_scratch_bytes(m->H, m->n_fft, num_threads, 4)));
  return m;
}

// x {H, L} (one batch element) normalized over its H channels at each position, written to out (may be x).
void norm_rows(const Layer& L, const float* x, float* out, int64_t H, int64_t len) {
  if (L.norm == 2) {
    s4op::cpu::channel_affine_f32(x, out, H, len, L.norm_w.data(), L.norm_b.data());
  } else {
    s4op::cpu::channel_layer_norm_f32(x, out, H, len, L.norm_w.data(), L.norm_b.data(), L.eps);
  }
}

void run(s4op_model& m, const void* x, int64_t B, int64_t len, const int64_t* lengths, float* logits) {
  if (x == nullptr || logits == nullptr) throw ArgError("x and logits must not be NULL");
  if (B < 1 || B > m.max_batch) {
    throw ArgError("batch=" + std::to_string(B) + " must be in [1, max_batch=" + std::to_string(m.max_batch) + "]");
  }
  if (len < 1 || len > m.max_len) {
    throw ArgError("len=" + std::to_string(len) + " must be in [1, max_len=" + std::to_string(m.max_len) + "]");
  }
  const int64_t H = m.H;
  float* h = m.h.data();
  // Encoder into (B, H, L).
  if (m.tokens) {
    if (lengths != nullptr) throw ArgError("lengths: token inputs mark padding with id 0; pass NULL");
    const int64_t* ids = static_cast<const int64_t*>(x);
    for (int64_t i = 0; i < B * len; ++i) {
      if (ids[i] < 0 || ids[i] >= m.V) {
        throw ArgError("x[" + std::to_string(i) + "] = " + std::to_string(ids[i]) + " is not a token id in [0, " +
                       std::to_string(m.V) + ")");
      }
    }
    for (int64_t b = 0; b < B; ++b)
      for (int64_t l = 0; l < len; ++l) {
        const float* row = m.enc_w.data() + ids[b * len + l] * H;
        for (int64_t c = 0; c < H; ++c) h[(b * H + c) * len + l] = row[c];
      }
  } else {
    if (lengths != nullptr) {
      for (int64_t b = 0; b < B; ++b) {
        if (lengths[b] < 0 || lengths[b] > len) {
          throw ArgError("lengths[" + std::to_string(b) + "] = " + std::to_string(lengths[b]) + " is outside [0, len]");
        }
      }
    }
    const float* u = static_cast<const float*>(x);
    for (int64_t b = 0; b < B; ++b) {
      s4op::cpu::linear_encode_f32(u + b * len * m.C, m.enc_w.data(), m.enc_b.data(), H, len, m.C, h + b * H * len,
                                   m.ut.data());
    }
  }
  // The residual blocks.
  for (const Layer& L : m.layers) {
    const float* src = h;
    if (m.prenorm && L.norm != 0) {
      for (int64_t b = 0; b < B; ++b) norm_rows(L, h + b * H * len, m.t.data() + b * H * len, H, len);
      src = m.t.data();
    }
    const int64_t A = static_cast<int64_t>(L.active.size());
    s4op::cpu::sparse_fftconv_f32(src, L.spectra.data(), L.D.data(), L.active.data(), B, H, len, A, m.n_fft,
                                  m.y.data(), m.threads, s4op::cpu::Epilogue::gelu, 0, nullptr, m.conv_scratch.data(),
                                  static_cast<int64_t>(m.conv_scratch.size()));
    s4op::cpu::glu_mix_f32(L.mix.data(), m.y.data(), B, H, H, len, h, /*accumulate=*/true, m.threads);
    if (!m.prenorm && L.norm != 0) {
      for (int64_t b = 0; b < B; ++b) norm_rows(L, h + b * H * len, h + b * H * len, H, len);
    }
  }
  // Masked mean over the sequence, then the decoder.
  for (int64_t b = 0; b < B; ++b) {
    float* pooled = m.pooled.data() + b * H;
    const float* mask = nullptr;
    if (m.tokens || lengths != nullptr) {
      float* mk = m.mask.data();  // {len}: 1 where the position is valid
      for (int64_t l = 0; l < len; ++l) {
        mk[l] = (m.tokens ? static_cast<const int64_t*>(x)[b * len + l] != 0 : l < lengths[b]) ? 1.f : 0.f;
      }
      mask = mk;
    }
    s4op::cpu::masked_mean_f32(h + b * H * len, H, len, mask, pooled);
    for (int64_t k = 0; k < m.K; ++k) {
      float acc = m.dec_b[k];
      for (int64_t c = 0; c < H; ++c) acc += m.dec_w[k * H + c] * pooled[c];
      logits[b * m.K + k] = acc;
    }
  }
}

}  // namespace

// ---- Streaming: the same classifier one sample at a time (the layers' recurrent step, ssm_step.h).
struct s4op_stream {
  const s4op_model* model = nullptr;
  int64_t B = 0, samples = 0;
  std::vector<std::vector<float>> states;  // per layer {B, A, N2, 2}
  std::vector<float> h, t, y;              // {B, H}: the residual stream, a prenorm's output, the SSM output
  std::vector<float> ut;                   // {C}: scratch of the encoder
  std::vector<double> sum, count;          // {B, H}, {B}: the running pooled sum and its positions
};

namespace {

std::unique_ptr<s4op_stream> stream_open(const s4op_model* m, int64_t B) {
  if (m == nullptr) throw ArgError("model must not be NULL");
  if (B < 1 || B > kMaxDim) throw ArgError("batch must be in [1, 2^31], got " + std::to_string(B));
  auto s = std::make_unique<s4op_stream>();
  s->model = m;
  s->B = B;
  for (size_t i = 0; i < m->layers.size(); ++i) {
    const Layer& L = m->layers[i];
    if (L.step_fields == 0) {
      throw FileError("layer " + std::to_string(i) + " (S4) has no 'C_f' entry, which streaming needs: the file was "
                      "written by an older s4op export; export the model again");
    }
    const int64_t A = static_cast<int64_t>(L.active.size());
    s->states.emplace_back(static_cast<size_t>(checked_mul(checked_mul(B, A, "state"), 2 * L.N2, "state")), 0.f);
  }
  const int64_t BH = checked_mul(B, m->H, "stream");
  s->h.resize(static_cast<size_t>(BH));
  s->t.resize(static_cast<size_t>(BH));
  s->y.resize(static_cast<size_t>(BH));
  s->ut.resize(static_cast<size_t>(m->C));
  s->sum.assign(static_cast<size_t>(BH), 0.0);
  s->count.assign(static_cast<size_t>(B), 0.0);
  return s;
}

void stream_push(s4op_stream& s, const void* x, int64_t len) {
  const s4op_model& m = *s.model;
  if (len < 0) throw ArgError("len must be >= 0, got " + std::to_string(len));
  if (len == 0) return;
  if (x == nullptr) throw ArgError("x must not be NULL");
  const int64_t B = s.B, H = m.H;
  if (m.tokens) {
    const int64_t* ids = static_cast<const int64_t*>(x);
    for (int64_t i = 0; i < B * len; ++i) {
      if (ids[i] < 0 || ids[i] >= m.V) {
        throw ArgError("x[" + std::to_string(i) + "] = " + std::to_string(ids[i]) + " is not a token id in [0, " +
                       std::to_string(m.V) + ")");
      }
    }
  }
  float* h = s.h.data();
  for (int64_t l = 0; l < len; ++l) {
    // The encoder at this position, into {B, H} (= {B, H, 1}).
    for (int64_t b = 0; b < B; ++b) {
      if (m.tokens) {
        const float* row = m.enc_w.data() + static_cast<const int64_t*>(x)[b * len + l] * H;
        std::copy(row, row + H, h + b * H);
      } else {
        const float* u = static_cast<const float*>(x) + (b * len + l) * m.C;  // {1, C}
        s4op::cpu::linear_encode_f32(u, m.enc_w.data(), m.enc_b.data(), H, 1, m.C, h + b * H, s.ut.data());
      }
    }
    for (size_t i = 0; i < m.layers.size(); ++i) {
      const Layer& L = m.layers[i];
      const float* src = h;
      if (m.prenorm && L.norm != 0) {
        for (int64_t b = 0; b < B; ++b) norm_rows(L, h + b * H, s.t.data() + b * H, H, 1);
        src = s.t.data();
      }
      float* state = s.states[i].data();
      s4op::cpu::ssm_step_f32(L.step_modes.data(), L.step_scalars.data(), L.step_fields, L.active.data(), B, H,
                              static_cast<int64_t>(L.active.size()), std::max<int64_t>(L.N2, 1), src, state, state,
                              s.y.data(), s4op::cpu::Epilogue::gelu, m.threads);
      s4op::cpu::glu_mix_f32(L.mix.data(), s.y.data(), B, H, H, 1, h, /*accumulate=*/true, m.threads);
      if (!m.prenorm && L.norm != 0) {
        for (int64_t b = 0; b < B; ++b) norm_rows(L, h + b * H, h + b * H, H, 1);
      }
    }
    for (int64_t b = 0; b < B; ++b) {
      if (m.tokens && static_cast<const int64_t*>(x)[b * len + l] == 0) continue;  // padding: not pooled
      for (int64_t c = 0; c < H; ++c) s.sum[b * H + c] += h[b * H + c];
      s.count[b] += 1.0;
    }
    ++s.samples;
  }
}

void stream_logits(const s4op_stream& s, float* logits) {
  if (logits == nullptr) throw ArgError("logits must not be NULL");
  const s4op_model& m = *s.model;
  const int64_t H = m.H;
  for (int64_t b = 0; b < s.B; ++b) {
    const double n = std::max(s.count[b], 1.0);
    for (int64_t k = 0; k < m.K; ++k) {
      float acc = m.dec_b[k];
      for (int64_t c = 0; c < H; ++c) acc += m.dec_w[k * H + c] * static_cast<float>(s.sum[b * H + c] / n);
      logits[b * m.K + k] = acc;
    }
  }
}

void set_error(char* err, size_t err_size, const std::string& msg) {
  if (err == nullptr || err_size == 0) return;
  const size_t n = std::min(err_size - 1, msg.size());
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

template <class F>
int guarded(char* err, size_t err_size, const char* where, F&& f) {
  set_error(err, err_size, "");
  try {
    f();
    return S4OP_OK;
  } catch (const FileError& e) {
    set_error(err, err_size, std::string(where) + ": " + e.what());
    return S4OP_ERR_FILE;
  } catch (const std::invalid_argument& e) {
    set_error(err, err_size, std::string(where) + ": " + e.what());
    return S4OP_ERR_ARGUMENT;
  } catch (const std::bad_alloc&) {
    set_error(err, err_size, std::string(where) + ": out of memory");
    return S4OP_ERR_MEMORY;
  } catch (const std::exception& e) {
    set_error(err, err_size, std::string(where) + ": " + e.what());
    return S4OP_ERR_INTERNAL;
  } catch (...) {
    set_error(err, err_size, std::string(where) + ": unknown error");
    return S4OP_ERR_INTERNAL;
  }
}

}  // namespace

extern "C" {

int s4op_model_load(const char* path, int64_t max_batch, int64_t max_len, int num_threads, s4op_model** model,
                    char* err, size_t err_size) {
  if (model == nullptr) {
    set_error(err, err_size, "s4op_model_load: model must not be NULL");
    return S4OP_ERR_ARGUMENT;
  }
  *model = nullptr;
  const std::string where = std::string("s4op_model_load(") + (path ? path : "NULL") + ")";
  return guarded(err, err_size, where.c_str(), [&] { *model = load(path, max_batch, max_len, num_threads).release(); });
}

int s4op_model_get_info(const s4op_model* m, s4op_model_info* info) {
  if (m == nullptr || info == nullptr) return S4OP_ERR_ARGUMENT;
  int64_t active = 0;
  for (const Layer& L : m->layers) active += static_cast<int64_t>(L.active.size());
  *info = s4op_model_info{};
  info->format_version = kFormatVersion;
  info->tokens = m->tokens;
  info->in_channels = m->C;
  info->vocab_size = m->V;
  info->num_classes = m->K;
  info->multilabel = m->multilabel;
  info->d_model = m->H;
  info->n_layers = static_cast<int64_t>(m->layers.size());
  info->max_len = m->max_len;
  info->max_batch = m->max_batch;
  info->active_channels = active;
  info->channels = m->H * static_cast<int64_t>(m->layers.size());
  info->weight_bytes = m->weight_bytes;
  info->arena_bytes = 4 * static_cast<int64_t>(m->h.size() + m->t.size() + m->y.size() + m->mask.size() +
                                               m->pooled.size() + m->ut.size());
  info->scratch_bytes = static_cast<int64_t>(m->conv_scratch.size());
  return S4OP_OK;
}

int s4op_model_run(s4op_model* model, const void* x, int64_t batch, int64_t len, const int64_t* lengths,
                   float* logits, char* err, size_t err_size) {
  if (model == nullptr) {
    set_error(err, err_size, "s4op_model_run: model must not be NULL");
    return S4OP_ERR_ARGUMENT;
  }
  return guarded(err, err_size, "s4op_model_run", [&] { run(*model, x, batch, len, lengths, logits); });
}

void s4op_model_free(s4op_model* model) { delete model; }

int s4op_stream_open(const s4op_model* model, int64_t batch, s4op_stream** stream, char* err, size_t err_size) {
  if (stream == nullptr) {
    set_error(err, err_size, "s4op_stream_open: stream must not be NULL");
    return S4OP_ERR_ARGUMENT;
  }
  *stream = nullptr;
  return guarded(err, err_size, "s4op_stream_open", [&] { *stream = stream_open(model, batch).release(); });
}

int s4op_stream_push(s4op_stream* stream, const void* x, int64_t len, char* err, size_t err_size) {
  if (stream == nullptr) {
    set_error(err, err_size, "s4op_stream_push: stream must not be NULL");
    return S4OP_ERR_ARGUMENT;
  }
  return guarded(err, err_size, "s4op_stream_push", [&] { stream_push(*stream, x, len); });
}

int s4op_stream_logits(const s4op_stream* stream, float* logits, char* err, size_t err_size) {
  if (stream == nullptr) {
    set_error(err, err_size, "s4op_stream_logits: stream must not be NULL");
    return S4OP_ERR_ARGUMENT;
  }
  return guarded(err, err_size, "s4op_stream_logits", [&] { stream_logits(*stream, logits); });
}

int64_t s4op_stream_samples(const s4op_stream* stream) { return stream == nullptr ? -1 : stream->samples; }

int s4op_stream_reset(s4op_stream* stream) {
  if (stream == nullptr) return S4OP_ERR_ARGUMENT;
  for (auto& st : stream->states) std::fill(st.begin(), st.end(), 0.f);
  std::fill(stream->sum.begin(), stream->sum.end(), 0.0);
  std::fill(stream->count.begin(), stream->count.end(), 0.0);
  stream->samples = 0;
  return S4OP_OK;
}

void s4op_stream_free(s4op_stream* stream) { delete stream; }

const char* s4op_runtime_simd(void) { return s4op::cpu::glu_mix_isa(); }

}  // extern "C"
