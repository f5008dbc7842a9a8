/* The torch-free runtime: load a model file written by `s4op export` (s4op_kernels/export.py documents the
 * format) and run the whole classifier -- encoder, the S4/S4D residual blocks over their active channels,
 * masked mean pooling, decoder -- in C++ with no Python and no torch.
 *
 * Memory: everything is allocated by s4op_model_load (the weights, the kernels' spectra, generated once for
 * the model's maximum length, and one arena of activations for max_batch x max_len); s4op_model_run
 * allocates nothing when num_threads is 1 (the default of s4op-infer: an embedded target is often single-
 * core; with more threads the core's thread pool may allocate its task records).
 *
 * Threads: a model runs one call at a time (its arena is shared by calls); load one model per thread to run
 * in parallel.  Errors: every function returns 0 on success and a nonzero code otherwise, with a message
 * (NUL-terminated, truncated to err_size) in err when err is not NULL; no function aborts or throws.
 */
#ifndef S4OP_RUNTIME_H_
#define S4OP_RUNTIME_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  S4OP_OK = 0,
  S4OP_ERR_ARGUMENT = 1,  /* a bad argument to the call */
  S4OP_ERR_FILE = 2,      /* the file cannot be read, or is not a valid model file (corrupted, truncated,
                             a later format version, inconsistent shapes) */
  S4OP_ERR_MEMORY = 3,    /* the allocation at load failed */
  S4OP_ERR_INTERNAL = 4
};

typedef struct s4op_model s4op_model;

typedef struct {
  int64_t format_version;
  int64_t tokens;          /* 1: input (B, L) int64 token ids (0 = padding); 0: (B, L, C) float32 */
  int64_t in_channels;     /* C of a continuous input; 0 for tokens */
  int64_t vocab_size;      /* tokens: ids must be in [0, vocab_size); 0 otherwise */
  int64_t num_classes;     /* logits per example */
  int64_t multilabel;      /* 1: independent labels (probabilities by sigmoid); 0: classes (softmax) */
  int64_t d_model, n_layers, max_len, max_batch;
  int64_t active_channels, channels;  /* over all layers: active SSM operators and all of them */
  int64_t weight_bytes;    /* weights held in memory, spectra included */
  int64_t arena_bytes;     /* the activation arena for max_batch x max_len */
  int64_t scratch_bytes;   /* the FFT convolution's buffers (O(H + threads n_fft), independent of the batch) */
} s4op_model_info;

/* Loads `path`.  max_batch >= 1: the largest batch s4op_model_run will get; max_len: the longest sequence
 * (0: the file's own maximum; larger than it is refused, the kernels were exported up to that length);
 * num_threads >= 1. */
int s4op_model_load(const char* path, int64_t max_batch, int64_t max_len, int num_threads, s4op_model** model,
                    char* err, size_t err_size);

int s4op_model_get_info(const s4op_model* model, s4op_model_info* info);

/* x: batch x len token ids (int64, when info.tokens) or batch x len x in_channels floats, row-major;
 * lengths: NULL, or batch valid lengths of a continuous input (positions >= lengths[b] are padding, left out
 * of the pooling; tokens mark padding themselves with id 0); logits: batch x num_classes floats. */
int s4op_model_run(s4op_model* model, const void* x, int64_t batch, int64_t len, const int64_t* lengths,
                   float* logits, char* err, size_t err_size);

void s4op_model_free(s4op_model* model);

/* Streaming: the classifier fed one sample at a time, with every layer's recurrent state (ssm_step.h) and the
 * running pooled sum, so the logits can be read after any number of samples; they equal s4op_model_run on the
 * samples so far (up to float32 rounding).  Work per sample: O(active channels x d_state + d_model^2) per layer,
 * independent of how many samples came before; no length limit (max_len bounds batch runs only).  A stream reads
 * the model's weights and owns its own state and buffers: the model must outlive it, and a stream runs one call at
 * a time (streams of one model may run in parallel, beside batch runs).  An S4 layer needs the file's C_f entry
 * (written by `s4op export` since streaming exists).  s4op_stream_push allocates nothing (num_threads 1). */
typedef struct s4op_stream s4op_stream;

/* batch >= 1 parallel sequences (independent of the model's max_batch). */
int s4op_stream_open(const s4op_model* model, int64_t batch, s4op_stream** stream, char* err, size_t err_size);

/* The next len >= 0 samples of every sequence: x is batch x len token ids (int64; 0 = padding, left out of the
 * mean as in s4op_model_run) or batch x len x in_channels floats, row-major. */
int s4op_stream_push(s4op_stream* stream, const void* x, int64_t len, char* err, size_t err_size);

/* logits: batch x num_classes floats of the samples pushed so far (the decoder of zero features before any). */
int s4op_stream_logits(const s4op_stream* stream, float* logits, char* err, size_t err_size);

/* Samples pushed since the start or the last reset (-1 for NULL). */
int64_t s4op_stream_samples(const s4op_stream* stream);

/* Zero states and pooled sum: a new sequence. */
int s4op_stream_reset(s4op_stream* stream);

void s4op_stream_free(s4op_stream* stream);

/* The SIMD path the output mixing uses on this CPU (the core's names: "avx512", "avx2+fma", "scalar",
 * "generic"). */
const char* s4op_runtime_simd(void);

#ifdef __cplusplus
}
#endif

#endif /* S4OP_RUNTIME_H_ */
