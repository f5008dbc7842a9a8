// s4op-infer: run an exported model (`s4op export`) on a NumPy .npy input with the torch-free runtime and print
// one line per example: the logits, or with --probs the class probabilities (softmax; sigmoid per label for a
// multi-label model).  With --stream the input is fed one sample at a time to a stream (the layers' recurrent
// step, runtime.h's s4op_stream_*), as a live signal would be, and the logits after the last sample are printed:
// the batch run's within float32 rounding; the input may then be longer than the file's max_len.
//
//   s4op-infer MODEL.s4m INPUT.npy [--threads N] [--probs] [--info] [--stream]
//
// INPUT.npy: a C-ordered array, little-endian; a continuous model takes float32 (B, L, C) or (L, C); a token
// model takes int64 or int32 (B, L) or (L,) token ids (0 = padding).  Exit status 0 on success, 2 on a usage
// error, 1 on any other error (the message on stderr).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "s4op/runtime.h"

namespace {

struct Npy {
  std::string descr;
  std::vector<int64_t> shape;
  std::vector<char> data;
};

std::string field(const std::string& header, const std::string& key) {
  const size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) throw std::runtime_error("the .npy header has no '" + key + "'");
  size_t p = header.find(':', k);
  if (p == std::string::npos) throw std::runtime_error("bad .npy header");
  ++p;
  while (p < header.size() && header[p] == ' ') ++p;
  if (p < header.size() && header[p] == '\'') {
    const size_t e = header.find('\'', p + 1);
    if (e == std::string::npos) throw std::runtime_error("bad .npy header");
    return header.substr(p + 1, e - p - 1);
  }
  if (p < header.size() && header[p] == '(') {
    const size_t e = header.find(')', p);
    if (e == std::string::npos) throw std::runtime_error("bad .npy header");
    return header.substr(p + 1, e - p - 1);
  }
  const size_t e = header.find_first_of(",}", p);
  return header.substr(p, e == std::string::npos ? std::string::npos : e - p);
}

Npy read_npy(const char* path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(std::string("cannot open ") + path);
  std::vector<char> blob((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (blob.size() < 10 || std::memcmp(blob.data(), "\x93NUMPY", 6) != 0) {
    throw std::runtime_error(std::string(path) + ": not a .npy file");
  }
  const int major = static_cast<unsigned char>(blob[6]);
  size_t hlen = 0, start = 0;
  if (major == 1) {
    hlen = static_cast<unsigned char>(blob[8]) | (static_cast<size_t>(static_cast<unsigned char>(blob[9])) << 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (blob.size() < 12) throw std::runtime_error(std::string(path) + ": truncated .npy header");
    for (int i = 0; i < 4; ++i) hlen |= static_cast<size_t>(static_cast<unsigned char>(blob[8 + i])) << (8 * i);
    start = 12;
  } else {
    throw std::runtime_error(std::string(path) + ": unsupported .npy version " + std::to_string(major));
  }
  if (start + hlen > blob.size()) throw std::runtime_error(std::string(path) + ": truncated .npy header");
  const std::string header(blob.data() + start, hlen);
  Npy n;
  n.descr = field(header, "descr");
  if (field(header, "fortran_order").find("False") == std::string::npos) {
    throw std::runtime_error(std::string(path) + ": Fortran-ordered arrays are not supported; save a C-ordered one");
  }
  const std::string shape = field(header, "shape");
  size_t p = 0;
  while (p < shape.size()) {
    while (p < shape.size() && (shape[p] == ' ' || shape[p] == ',')) ++p;
    if (p >= shape.size()) break;
    size_t e = p;
    while (e < shape.size() && shape[e] >= '0' && shape[e] <= '9') ++e;
    if (e == p) throw std::runtime_error(std::string(path) + ": bad shape in the .npy header");
    n.shape.push_back(std::stoll(shape.substr(p, e - p)));
    p = e;
  }
  n.data.assign(blob.begin() + static_cast<std::ptrdiff_t>(start + hlen), blob.end());
  return n;
}

int usage(const char* msg) {
  std::fprintf(stderr, "%s\nusage: s4op-infer MODEL.s4m INPUT.npy [--threads N] [--probs] [--info] [--stream]\n", msg);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const char* model_path = nullptr;
  const char* input_path = nullptr;
  int threads = 1;
  bool probs = false, info_only = false, stream = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads") {
      if (i + 1 >= argc) return usage("s4op-infer: --threads needs a value");
      char* end = nullptr;
      const long v = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || v < 1 || v > 1024) return usage("s4op-infer: --threads must be an integer in [1, 1024]");
      threads = static_cast<int>(v);
    } else if (a == "--probs") {
      probs = true;
    } else if (a == "--info") {
      info_only = true;
    } else if (a == "--stream") {
      stream = true;
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: s4op-infer MODEL.s4m INPUT.npy [--threads N] [--probs] [--info] [--stream]\n");
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      return usage(("s4op-infer: unknown option " + a).c_str());
    } else if (model_path == nullptr) {
      model_path = argv[i];
    } else if (input_path == nullptr) {
      input_path = argv[i];
    } else {
      return usage("s4op-infer: too many arguments");
    }
  }
  if (model_path == nullptr || (input_path == nullptr && !info_only)) return usage("s4op-infer: missing arguments");
  char err[1024];
  try {
    int64_t batch = 1, len = 1;
    Npy x;
    s4op_model* probe = nullptr;
    if (s4op_model_load(model_path, 1, 0, 1, &probe, err, sizeof err) != S4OP_OK) throw std::runtime_error(err);
    s4op_model_info info;
    s4op_model_get_info(probe, &info);
    s4op_model_free(probe);
    if (info_only) {
      std::printf("input %s, in_channels %lld, vocab %lld, classes %lld%s, d_model %lld, layers %lld, max_len %lld, "
                  "active channels %lld of %lld, weights %lld bytes, mixing SIMD %s\n",
                  info.tokens ? "tokens" : "continuous", static_cast<long long>(info.in_channels),
                  static_cast<long long>(info.vocab_size), static_cast<long long>(info.num_classes),
                  info.multilabel ? " (multi-label)" : "", static_cast<long long>(info.d_model),
                  static_cast<long long>(info.n_layers), static_cast<long long>(info.max_len),
                  static_cast<long long>(info.active_channels), static_cast<long long>(info.channels),
                  static_cast<long long>(info.weight_bytes), s4op_runtime_simd());
      if (input_path == nullptr) return 0;
    }
    x = read_npy(input_path);
    std::vector<int64_t> ids;
    const void* data = x.data.data();
    if (info.tokens) {
      if (x.shape.size() == 1) x.shape.insert(x.shape.begin(), 1);
      if (x.shape.size() != 2) throw std::runtime_error("a token model takes (B, L) or (L,) ids");
      batch = x.shape[0];
      len = x.shape[1];
      const size_t n = static_cast<size_t>(batch * len);
      ids.resize(n);
      if (x.descr == "<i8") {
        if (x.data.size() < n * 8) throw std::runtime_error("truncated .npy data");
        std::memcpy(ids.data(), x.data.data(), n * 8);
      } else if (x.descr == "<i4") {
        if (x.data.size() < n * 4) throw std::runtime_error("truncated .npy data");
        for (size_t i = 0; i < n; ++i) {
          int32_t v;
          std::memcpy(&v, x.data.data() + 4 * i, 4);
          ids[i] = v;
        }
      } else {
        throw std::runtime_error("a token model takes int64 ('<i8') or int32 ('<i4') ids, got '" + x.descr + "'");
      }
      data = ids.data();
    } else {
      if (x.shape.size() == 2) x.shape.insert(x.shape.begin(), 1);
      if (x.shape.size() != 3 || x.shape[2] != info.in_channels) {
        throw std::runtime_error("a continuous model takes float32 (B, L, " + std::to_string(info.in_channels) +
                                 ") or (L, " + std::to_string(info.in_channels) + ")");
      }
      if (x.descr != "<f4") throw std::runtime_error("a continuous model takes float32 ('<f4'), got '" + x.descr + "'");
      batch = x.shape[0];
      len = x.shape[1];
      if (x.data.size() < static_cast<size_t>(batch * len * x.shape[2]) * 4) throw std::runtime_error("truncated .npy data");
    }
    if (batch < 1 || len < 1) throw std::runtime_error("the input is empty");
    s4op_model* model = nullptr;
    // A stream has no length limit; a batch run longer than the file's max_len is refused by the load.
    const int64_t load_len = !stream && len > info.max_len ? len : 0;
    if (s4op_model_load(model_path, stream ? 1 : batch, load_len, threads, &model, err, sizeof err) != S4OP_OK) {
      throw std::runtime_error(err);
    }
    std::vector<float> logits(static_cast<size_t>(batch * info.num_classes));
    int rc = S4OP_OK;
    if (stream) {
      // One sample at a time, as a live signal arrives: gather position l of every example.
      s4op_stream* st = nullptr;
      rc = s4op_stream_open(model, batch, &st, err, sizeof err);
      const int64_t width = info.tokens ? 1 : info.in_channels, bytes = info.tokens ? 8 : 4;
      std::vector<char> sample(static_cast<size_t>(batch * width * bytes));
      const char* src = static_cast<const char*>(data);
      for (int64_t l = 0; rc == S4OP_OK && l < len; ++l) {
        for (int64_t b = 0; b < batch; ++b) {
          std::memcpy(sample.data() + b * width * bytes, src + (b * len + l) * width * bytes,
                      static_cast<size_t>(width * bytes));
        }
        rc = s4op_stream_push(st, sample.data(), 1, err, sizeof err);
      }
      if (rc == S4OP_OK) rc = s4op_stream_logits(st, logits.data(), err, sizeof err);
      s4op_stream_free(st);
    } else {
      rc = s4op_model_run(model, data, batch, len, nullptr, logits.data(), err, sizeof err);
    }
    s4op_model_free(model);
    if (rc != S4OP_OK) throw std::runtime_error(err);
    for (int64_t b = 0; b < batch; ++b) {
      float* z = logits.data() + b * info.num_classes;
      if (probs) {
        if (info.multilabel) {
          for (int64_t k = 0; k < info.num_classes; ++k) z[k] = 1.f / (1.f + std::exp(-z[k]));
        } else {
          float mx = z[0], s = 0.f;
          for (int64_t k = 1; k < info.num_classes; ++k) mx = z[k] > mx ? z[k] : mx;
          for (int64_t k = 0; k < info.num_classes; ++k) s += (z[k] = std::exp(z[k] - mx));
          for (int64_t k = 0; k < info.num_classes; ++k) z[k] /= s;
        }
      }
      for (int64_t k = 0; k < info.num_classes; ++k) std::printf(k ? " %.9g" : "%.9g", static_cast<double>(z[k]));
      std::printf("\n");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "s4op-infer: %s\n", e.what());
    return 1;
  }
  return 0;
}
