/*
 * grain_deflate: compresses the grains of one VMDK chunk with libdeflate, for the worker threads of
 * src/adapters/deflate-pool.ts. scripts/build-native links it with libdeflate 1.23, the version of the
 * WebAssembly build the pool falls back to, so both give the same bytes; native code takes about 0.55x the CPU
 * time.
 *
 * compressChunk(input: ArrayBuffer, length, output: ArrayBuffer, grainBytes, level) -> number[]
 *   Skips all-zero grains; for every other grain i appends (i, offset in output, compressed length).
 *
 * Each worker thread is its own N-API environment, so the compressor lives in that environment's instance data:
 * allocated on first use, reused for every later chunk, freed when the thread ends.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <libdeflate.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct state {
  struct libdeflate_compressor *compressor;
  int level;
};

static void free_state(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct state *s = data;
  if (s->compressor) libdeflate_free_compressor(s->compressor);
  free(s);
}

static int all_zero(const uint8_t *p, size_t n) {
  /* Grains are 64 KiB and 8-byte aligned in an ArrayBuffer; word compares keep this well under the deflate cost. */
  const uint64_t *w = (const uint64_t *)p;
  for (size_t i = 0; i < n / 8; i++)
    if (w[i]) return 0;
  for (size_t i = n & ~(size_t)7; i < n; i++)
    if (p[i]) return 0;
  return 1;
}

#define CHECK(call)                                                     \
  do {                                                                  \
    if ((call) != napi_ok) {                                            \
      napi_throw_error(env, NULL, "grain_deflate: N-API call failed: " #call); \
      return NULL;                                                      \
    }                                                                   \
  } while (0)

static napi_value fail(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static napi_status push(napi_env env, napi_value array, uint32_t *n, int64_t value) {
  napi_value v;
  napi_status st = napi_create_int64(env, value, &v);
  return st == napi_ok ? napi_set_element(env, array, (*n)++, v) : st;
}

static napi_value compress_chunk(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 5) return fail(env, "compressChunk(input, length, output, grainBytes, level)");

  void *in_data, *out_data;
  size_t in_len, out_len;
  int64_t length, grain_bytes;
  int32_t level;
  CHECK(napi_get_arraybuffer_info(env, argv[0], &in_data, &in_len));
  CHECK(napi_get_value_int64(env, argv[1], &length));
  CHECK(napi_get_arraybuffer_info(env, argv[2], &out_data, &out_len));
  CHECK(napi_get_value_int64(env, argv[3], &grain_bytes));
  CHECK(napi_get_value_int32(env, argv[4], &level));
  if (grain_bytes <= 0 || length < 0 || (uint64_t)length > in_len || length % grain_bytes != 0)
    return fail(env, "compressChunk: length must be whole grains within the input");

  struct state *s = NULL;
  CHECK(napi_get_instance_data(env, (void **)&s));
  if (!s || s->level != level) {
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
    if (!c) return fail(env, "compressChunk: libdeflate_alloc_compressor failed (level out of range?)");
    if (!s) {
      s = calloc(1, sizeof *s);
      if (!s) {
        libdeflate_free_compressor(c);
        return fail(env, "compressChunk: out of memory");
      }
      if (napi_set_instance_data(env, s, free_state, NULL) != napi_ok) {
        libdeflate_free_compressor(c);
        free(s);
        return fail(env, "compressChunk: napi_set_instance_data failed");
      }
    } else {
      libdeflate_free_compressor(s->compressor);
    }
    s->compressor = c;
    s->level = level;
  }

  const size_t bound = libdeflate_zlib_compress_bound(s->compressor, (size_t)grain_bytes);
  napi_value entries;
  CHECK(napi_create_array(env, &entries));
  uint32_t n = 0;
  size_t pos = 0;
  const uint8_t *in = in_data;
  uint8_t *out = out_data;
  for (int64_t off = 0, i = 0; off < length; off += grain_bytes, i++) {
    if (all_zero(in + off, (size_t)grain_bytes)) continue;
    if (pos + bound > out_len) return fail(env, "compressChunk: compressed chunk does not fit its output buffer");
    size_t k = libdeflate_zlib_compress(s->compressor, in + off, (size_t)grain_bytes, out + pos, out_len - pos);
    if (k == 0) return fail(env, "compressChunk: libdeflate_zlib_compress failed");
    CHECK(push(env, entries, &n, i));
    CHECK(push(env, entries, &n, (int64_t)pos));
    CHECK(push(env, entries, &n, (int64_t)k));
    pos += k;
  }
  return entries;
}

/* zlibBound(grainBytes, level): the most one grain can take compressed, for sizing output buffers. */
static napi_value zlib_bound(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 2) return fail(env, "zlibBound(grainBytes, level)");
  int64_t grain_bytes;
  int32_t level;
  CHECK(napi_get_value_int64(env, argv[0], &grain_bytes));
  CHECK(napi_get_value_int32(env, argv[1], &level));
  if (grain_bytes <= 0) return fail(env, "zlibBound: grainBytes must be positive");
  struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
  if (!c) return fail(env, "zlibBound: libdeflate_alloc_compressor failed (level out of range?)");
  size_t bound = libdeflate_zlib_compress_bound(c, (size_t)grain_bytes);
  libdeflate_free_compressor(c);
  napi_value v;
  CHECK(napi_create_int64(env, (int64_t)bound, &v));
  return v;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  CHECK(napi_create_function(env, "compressChunk", NAPI_AUTO_LENGTH, compress_chunk, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "compressChunk", fn));
  CHECK(napi_create_function(env, "zlibBound", NAPI_AUTO_LENGTH, zlib_bound, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "zlibBound", fn));
  return exports;
}
