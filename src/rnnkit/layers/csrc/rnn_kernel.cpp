// rnnkit's whole-sequence CPU kernel: forward and backward of SimpleRNN, GRU (reset_after) and
// LSTM over every time step, float32 and float64. Built and loaded by rnnkit/layers/kernel.py.
//
// Why it is fast (measured on (256, 120, 14), 32 units; numbers in the issue-8 note):
// - each step's products are register-blocked micro-kernels (`gemm` below) on operands that stay
//   in L1: MKL's sgemm reached 41–60 GFLOP/s on these shapes, the micro-kernel 105–170;
// - a step runs on blocks of RBLK rows: input product, recurrent product and the gate maths of
//   a block are done while it is in cache, so nothing of size (time, batch, gates) is written
//   except what backward needs;
// - the gate maths is one vectorised loop per row (`#pragma omp simd`, no branch inside: the
//   cell kind is a template parameter), with an exp that vectorises (`exp_parts`);
// - backward accumulates the weight gradients per step as Xᵀ·dG products while dG is in cache;
// - with several threads each thread runs the whole time loop on chunks of rows (no barrier),
//   taken from a shared counter, so that a thread on a busy core takes fewer (`for_chunks`).
//
// Layouts: x (batch, time, m) and the outputs H (batch, time, n) are batch-major; weights are
// PyTorch's (G·n, m), (G·n, n), gate order r, z, n (GRU) and i, f, g, o (LSTM).
// `reverse` walks the input from its last step (go_backwards); H is in processing order.

#include <torch/extension.h>
#include <ATen/Parallel.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define RNNKIT_CSR 1
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <new>
#include <string>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

#if defined(__AVX512F__)
constexpr int VBYTES = 64, VREGS = 32;
#elif defined(__AVX__)
constexpr int VBYTES = 32, VREGS = 16;
#else
constexpr int VBYTES = 16, VREGS = 16;
#endif

// Registers a tile's multiply-add needs besides the accumulators and B: the broadcast of A, and
// without FMA (x86 generic and sse4) a temporary for the product, as mulps overwrites its operand.
// With one register for both, the 4 × 3 tile of those builds spilled: 3 × 3 tiles ran GRU(64)
// training 1.19-1.20× as fast on AMD Zen 3 (6 × 2 tiles 0.94×, 4 × 3 with B from memory 0.96×).
#if defined(__FMA__) || defined(__aarch64__)
constexpr int TEMPS = 1;
#else
constexpr int TEMPS = 2;
#endif

constexpr int64_t RBLK = 32;  // rows of a step processed together

// GRU_BEFORE: GRU with reset_after=False, h̃ = tanh(W_n x + b_n + U_n (r ⊙ h))
enum Kind : int64_t { RNN_TANH = 0, RNN_RELU = 1, GRU = 2, LSTM = 3, GRU_BEFORE = 4 };

template <typename T>
constexpr int64_t lanes = VBYTES / sizeof(T);

inline int64_t round_up(int64_t v, int64_t w) { return (v + w - 1) / w * w; }

// Scratch buffers on cache-line (64-byte) boundaries. std::vector's memory is 16-byte aligned, so
// where malloc happened to put a buffer decided how many of the products' vector loads split a
// cache line: the same call ran up to 10% slower or faster from one process to the next.
template <typename T>
struct LineAligned {
  using value_type = T;
  LineAligned() = default;
  template <typename U>
  LineAligned(const LineAligned<U>&) {}
  T* allocate(std::size_t count) {
    void* memory = ::operator new(count * sizeof(T), std::align_val_t(64));
    return static_cast<T*>(memory);
  }
  void deallocate(T* memory, std::size_t) { ::operator delete(memory, std::align_val_t(64)); }
  template <typename U>
  bool operator==(const LineAligned<U>&) const { return true; }
};
template <typename T>
using Buffer = std::vector<T, LineAligned<T>>;
// A line-aligned array left unset, for values written in full before they are read (the weights'
// transposed copies): a Buffer's zero fill of them was 3% of LSTM(128)'s batch-1 inference call.
template <typename T>
class Unset {
 public:
  explicit Unset(std::size_t count) : data_(LineAligned<T>().allocate(count)) {}
  Unset(const Unset&) = delete;
  Unset& operator=(const Unset&) = delete;
  ~Unset() { LineAligned<T>().deallocate(data_, 0); }
  T* data() { return data_; }
  T& operator[](std::size_t i) { return data_[i]; }

 private:
  T* data_;
};

// ---------------------------------------------------------------------------------------------
// C (rows × N) (+)= A (rows × K) · B (K × N). A's element (r, k) is A[r·ars + k·acs], so that
// Aᵀ is read without a copy; B and C are row-major with N a multiple of the vector width.
// A register tile: RB rows × CV vectors of accumulators, CV vectors of B and one broadcast of A
// live in registers (RB·CV + CV + 1 ≤ the register count), so each k costs CV + RB loads for
// RB·CV fused multiply-adds. Loads go through an unaligned vector type (no memcpy: a memcpy
// into the accumulators made GCC keep them on the stack, at a quarter of the FMA rate).
template <typename T>
struct Vec {
  typedef T V __attribute__((vector_size(VBYTES)));
  typedef T U __attribute__((vector_size(VBYTES), aligned(alignof(T)), may_alias));
};

// Holds v in a vector register from here: without it GCC folded B's loads into the multiply-adds
// as memory operands, loading B again for every row of the tile (AVX2, 4 × 3 tile: 16 loads for
// 12 FMAs, not 7). Applied on the 16-register builds, where it was measured (AMD Zen 3, every
// level generic to avx2: GRU(64) training 1.03-1.34× as fast together with the broadcast below).
// The AVX-512 build is left to the compiler: held there too, it ran 0.97-1.03× as fast (Intel Xeon
// with AVX-512, native and avx512 builds, GRU, LSTM and SimpleRNN, training and inference).
template <typename V>
__attribute__((always_inline)) inline void keep_in_register(V& v) {
#if defined(__x86_64__) || defined(__i386__)
  asm("" : "+v"(v));
#elif defined(__aarch64__)
  asm("" : "+w"(v));
#endif
}

// PB: A is pre-broadcast (each of its values W times, a vector, see `gemm`), read with plain loads.
template <typename T, int RB, int CV, bool ACC, bool PB = false>
__attribute__((always_inline)) inline void tile(int64_t K, const T* __restrict A, int64_t ars, int64_t acs,
                                                const T* __restrict B, int64_t ldb, T* __restrict C, int64_t ldc) {
  using V = typename Vec<T>::V;
  using U = typename Vec<T>::U;
  constexpr int W = lanes<T>;
  V acc[RB][CV];
#pragma GCC unroll 32
  for (int r = 0; r < RB; r++)
#pragma GCC unroll 8
    for (int c = 0; c < CV; c++) acc[r][c] = ACC ? *reinterpret_cast<const U*>(C + r * ldc + c * W) : V{};
  for (int64_t k = 0; k < K; k++) {
    V b[CV];
#pragma GCC unroll 8
    for (int c = 0; c < CV; c++) {
      b[c] = *reinterpret_cast<const U*>(B + k * ldb + c * W);
      if constexpr (RB > 1 && VREGS == 16) keep_in_register(b[c]);  // one row: B is read once anyway
    }
#pragma GCC unroll 32
    for (int r = 0; r < RB; r++) {
      // s − 0 is s, even for −0, so this compiles to one broadcast from memory; 0 + s (which is +0
      // for s = −0) compiled to a scalar add and a broadcast, with a register held for the zero
      V a;
      if constexpr (PB)
        a = *reinterpret_cast<const V*>(A + r * ars + k * acs);
      else
        a = A[r * ars + k * acs] - V{};
#pragma GCC unroll 8
      for (int c = 0; c < CV; c++) acc[r][c] += a * b[c];
    }
  }
#pragma GCC unroll 32
  for (int r = 0; r < RB; r++)
#pragma GCC unroll 8
    for (int c = 0; c < CV; c++) *reinterpret_cast<U*>(C + r * ldc + c * W) = acc[r][c];
}

// The rows of a tile of CV vectors: as many as this build's register file holds, at most 8
// (16 registers: 4 × 3 or 6 × 2, without FMA 3 × 3 or 6 × 2; 32 registers: 8 × 3 or 6 × 4).
template <int CV>
constexpr int rows_for = (VREGS - CV - TEMPS) / CV > 8 ? 8 : (VREGS - CV - TEMPS) / CV;

template <typename T, int CV, bool ACC, bool PB = false>
void tile_rows(int64_t rows, int64_t K, const T* A, int64_t ars, int64_t acs, const T* B, int64_t ldb, T* C,
               int64_t ldc) {
  constexpr int RB = rows_for<CV>;
  int64_t r = 0;
  for (; r + RB <= rows; r += RB) tile<T, RB, CV, ACC, PB>(K, A + r * ars, ars, acs, B, ldb, C + r * ldc, ldc);
  const int64_t left = rows - r;
  A += r * ars;
  C += r * ldc;
  // the remainder in one tile of its own height
  if constexpr (RB > 1) if (left == 1) tile<T, 1, CV, ACC, PB>(K, A, ars, acs, B, ldb, C, ldc);
  if constexpr (RB > 2) if (left == 2) tile<T, 2, CV, ACC, PB>(K, A, ars, acs, B, ldb, C, ldc);
  if constexpr (RB > 3) if (left == 3) tile<T, 3, CV, ACC, PB>(K, A, ars, acs, B, ldb, C, ldc);
  if constexpr (RB > 4) if (left == 4) tile<T, 4, CV, ACC, PB>(K, A, ars, acs, B, ldb, C, ldc);
  if constexpr (RB > 5) if (left == 5) tile<T, 5, CV, ACC, PB>(K, A, ars, acs, B, ldb, C, ldc);
  if constexpr (RB > 6) if (left == 6) tile<T, 6, CV, ACC, PB>(K, A, ars, acs, B, ldb, C, ldc);
  if constexpr (RB > 7) if (left == 7) tile<T, 7, CV, ACC, PB>(K, A, ars, acs, B, ldb, C, ldc);
}

// The column vectors of C are taken CV at a time. 32 registers: 3 where they divide by 3, else 4
// or 2 where those divide, else 3s and a narrower remainder. 16 registers: 3s (4-row tiles, 12
// multiply-adds for 7 loads) and a remainder of 2s, never 1 (16 vectors: 3+3+3+3+2+2; LSTM(32)'s
// training pass at avx2 on AMD Zen 3 ran 4% faster than with 6-row tiles of 2, 12 for 8 loads).
// One row (batch 1): its product is a chain of K dependent multiply-adds per accumulator, so the
// row is taken in as few tiles as the registers allow (each up to 8 vectors wide, B's vectors and
// the accumulators in registers), whose chains run side by side: at batch 1 the column groups of
// the tiles above ran one after the other.
constexpr int WIDE = (VREGS - 1) / 2 > 8 ? 8 : (VREGS - 1) / 2;

template <typename T, bool ACC>
void gemm_row(int64_t nv, int64_t K, const T* A, int64_t acs, const T* B, int64_t ldb, T* C) {
  constexpr int64_t W = lanes<T>;
  const int64_t tiles = (nv + WIDE - 1) / WIDE, width = (nv + tiles - 1) / tiles;  // 12 vectors: 6 + 6
  for (int64_t c0 = 0; nv > 0;) {
    const int64_t cv = std::min(nv, width);
    const T* Bc = B + c0;
    T* Cc = C + c0;
    switch (cv) {
      case 1: tile<T, 1, 1, ACC>(K, A, 0, acs, Bc, ldb, Cc, 0); break;
      case 2: tile<T, 1, 2, ACC>(K, A, 0, acs, Bc, ldb, Cc, 0); break;
      case 3: tile<T, 1, 3, ACC>(K, A, 0, acs, Bc, ldb, Cc, 0); break;
      case 4: tile<T, 1, 4, ACC>(K, A, 0, acs, Bc, ldb, Cc, 0); break;
      case 5: tile<T, 1, 5, ACC>(K, A, 0, acs, Bc, ldb, Cc, 0); break;
      case 6: tile<T, 1, 6, ACC>(K, A, 0, acs, Bc, ldb, Cc, 0); break;
      case 7: tile<T, 1, 7, ACC>(K, A, 0, acs, Bc, ldb, Cc, 0); break;
      default:
        if constexpr (WIDE >= 8) tile<T, 1, 8, ACC>(K, A, 0, acs, Bc, ldb, Cc, 0);
        break;
    }
    nv -= cv;
    c0 += cv * W;
  }
}

// The width in vectors of the next group of C's columns, `left` vectors to go (see above): 32
// registers take `step` (column_step of the row's vectors), 16 registers 3s and a remainder of 2s.
inline int64_t column_step(int64_t nv) {
  return nv % 3 == 0 ? 3 : (VREGS >= 32 && nv % 4 == 0 ? 4 : (nv % 2 == 0 ? 2 : 3));
}
inline int64_t group_width(int64_t left, int64_t step) {
  return VREGS >= 32 ? std::min(left, step) : (left == 4 || left == 2 ? 2 : std::min<int64_t>(left, 3));
}

template <typename T, bool ACC, bool PB>
void gemm_cols(int64_t rows, int64_t nv, int64_t K, const T* A, int64_t ars, int64_t acs, const T* B, int64_t ldb,
               T* C, int64_t ldc) {
  constexpr int64_t W = lanes<T>;
  int64_t c0 = 0;
  const int64_t step = column_step(nv);
  while (nv > 0) {
    const int64_t cv = group_width(nv, step);
    const T* Bc = B + c0;
    T* Cc = C + c0;
    switch (cv) {
      case 1: tile_rows<T, 1, ACC, PB>(rows, K, A, ars, acs, Bc, ldb, Cc, ldc); break;
      case 2: tile_rows<T, 2, ACC, PB>(rows, K, A, ars, acs, Bc, ldb, Cc, ldc); break;
      case 3: tile_rows<T, 3, ACC, PB>(rows, K, A, ars, acs, Bc, ldb, Cc, ldc); break;
      default:
        if constexpr (VREGS >= 32) tile_rows<T, 4, ACC, PB>(rows, K, A, ars, acs, Bc, ldb, Cc, ldc);
        break;
    }
    nv -= cv;
    c0 += cv * W;
  }
}

// SSE (the x86 builds without AVX: generic, sse4) has no broadcast from memory: a broadcast of A
// is a load and a shuffle, made again for each group of C's columns. With 4 groups or more, A is
// broadcast once into a scratch copy (each value W times, a vector) that the tiles read with plain
// loads. Intel Xeon, generic and sse4, interleaved A/B of the kernel alone: the recipe's GRU(64)
// training 1.05-1.08× as fast, GRU(64) 1.04-1.08×, GRU(128) 1.08-1.11×, LSTM(32) 0.99-1.02×. Made
// from 2 groups on, the copy ran SimpleRNN(16) (4 vectors: 2 groups) at 0.85-0.87×; from 3 on,
// LSTM(32) at 0.98×.
#if (defined(__x86_64__) || defined(__i386__)) && !defined(__AVX__)
constexpr bool PREBROADCAST = true;
#else
constexpr bool PREBROADCAST = false;
#endif

template <typename T, bool ACC>
void gemm(int64_t rows, int64_t N, int64_t K, const T* A, int64_t ars, int64_t acs, const T* B, int64_t ldb, T* C,
          int64_t ldc) {
  constexpr int64_t W = lanes<T>;
  if (rows == 1) return gemm_row<T, ACC>(N / W, K, A, acs, B, ldb, C);
  if constexpr (PREBROADCAST) {
    int64_t groups = 0;  // the groups of C's columns, as gemm_cols takes them
    for (int64_t left = N / W, step = column_step(N / W); left > 0; groups++) left -= group_width(left, step);
    if (groups >= 4) {
      using V = typename Vec<T>::V;
      thread_local Buffer<T> scratch;
      if (scratch.size() < static_cast<std::size_t>(rows * K * W)) scratch.resize(rows * K * W);
      T* out = scratch.data();
      for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < K; k++) *reinterpret_cast<V*>(out + (r * K + k) * W) = A[r * ars + k * acs] - V{};
      return gemm_cols<T, ACC, true>(rows, N / W, K, out, K * W, W, B, ldb, C, ldc);
    }
  }
  gemm_cols<T, ACC, false>(rows, N / W, K, A, ars, acs, B, ldb, C, ldc);
}

// ---------------------------------------------------------------------------------------------
// e^x = s (1 + q) with s = 2^k and q = e^r − 1 (|r| ≤ ln 2 / 2, a Taylor polynomial to about one
// ulp), x clamped to the finite range. Written so that `omp simd` vectorises it (no calls).
inline void exp_parts(float x, float& s, float& q) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);  // a select, not std::min's reference
  constexpr float magic = 12582912.0f;  // 1.5 · 2^23: t's low mantissa bits hold k = round(x / ln 2)
  const float t = x * 1.44269504088896341f + magic;
  const float k = t - magic;
  float r = x - k * 0.693145751953125f;
  r = r - k * 1.428606820309417e-06f;
  q = r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
  // s = 2^k from the float (k + 127) · 2^23 converted to int32: a conversion, not an integer shift,
  // so that AVX (without AVX2's 256-bit integer ops) runs the gate maths 8 wide, not 4
  s = std::bit_cast<float>(static_cast<int32_t>((k + 127.0f) * 8388608.0f));
}

inline void exp_parts(double x, double& s, double& q) {
  x = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
  constexpr double magic = 6755399441055744.0;  // 1.5 · 2^52
  const double t = x * 1.4426950408889634074 + magic;
  const double k = t - magic;
  double r = x - k * 6.93147180369123816490e-01;
  r = r - k * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;  // 1/13!
  constexpr double inv[12] = {1.0 / 479001600, 1.0 / 39916800, 1.0 / 3628800, 1.0 / 362880, 1.0 / 40320, 1.0 / 5040,
                              1.0 / 720,       1.0 / 120,      1.0 / 24,      1.0 / 6,      0.5,          1.0};
  for (int i = 0; i < 12; i++) p = inv[i] + r * p;
  q = r * p;
  s = std::bit_cast<double>((std::bit_cast<uint64_t>(t) + 1023ull) << 52);
}

template <typename T>
inline T sigmoid(T x) {
  T s, q;
  exp_parts(-x, s, q);
  return T(1) / (T(1) + (s + s * q));
}

// tanh |x| = −u / (2 + u) with u = e^{−2|x|} − 1: accurate near 0 as well as in the tails
template <typename T>
inline T tanh_(T x) {
  T s, q;
  exp_parts(T(-2) * std::abs(x), s, q);
  const T u = (s - T(1)) + s * q;
  return std::copysign(-u / (T(2) + u), x);
}

// Asks for the cache lines of [p, p + bytes) ahead of their use: the next block's rows are
// strided over the whole sequence (a row per page), which the hardware prefetcher does not follow.
inline void prefetch(const void* p, int64_t bytes) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(p) & ~uintptr_t(63);
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + bytes;
  for (uintptr_t a = first; a < end; a += 64) __builtin_prefetch(reinterpret_cast<const void*>(a));
}

// ---------------------------------------------------------------------------------------------
template <typename T>
struct Problem {
  int64_t kind, batch, steps, m, n, G;
  bool reverse;
  int64_t Np, np, mp;  // G·n, n and m rounded up to the vector width
  const T* x;          // (batch, steps, m)
  const T* h0;         // (batch, n)
  const T* c0;         // (batch, n), LSTM
  const T* wihT;       // (m, Np)
  const T* whhT;       // (n, Np); GRU_BEFORE: the r and z blocks only (the n block zero)
  const T* whhT_n;     // GRU_BEFORE: (n, Np), the n block only
  const T* wihP;       // (G·n, mp), backward
  const T* whhP;       // (G·n, np), backward
  const T* bx;         // (G·n,) input bias (zeros without)
  const T* bh;         // (G·n,) recurrent bias, GRU (zeros otherwise)
  const T* mask;       // (batch, n) recurrent dropout mask, or (n,) with mask_stride 0
  int64_t mask_stride;
  bool masked;         // false: no recurrent dropout; the forward's product reads h_{t-1} in H
  int64_t save;        // values saved per row and step, in units of n
  bool ring;           // inference: S holds two steps (this one and the last), not every step
  const bool* real;    // (batch, steps) in input order: false where a step is padding; or nullptr
  T* H;                // (batch, steps, n)
  T* S;                // (steps, batch, save·n)

  int64_t t_in(int64_t s) const { return reverse ? steps - 1 - s : s; }
  bool padded(int64_t b, int64_t s) const { return real && !real[b * steps + t_in(s)]; }
  const T* h_prev(int64_t b, int64_t s) const { return s == 0 ? h0 + b * n : H + (b * steps + s - 1) * n; }
  int64_t h_prev_stride(int64_t s) const { return s == 0 ? n : steps * n; }
  int64_t slot(int64_t s) const { return ring ? (s & 1) : s; }
  const T* c_prev(int64_t b, int64_t s) const {
    return s == 0 ? c0 + b * n : S + (slot(s - 1) * batch + b) * save * n + 4 * n;
  }
  T* saved(int64_t b, int64_t s) const { return S + (slot(s) * batch + b) * save * n; }
};

int64_t saved_values(int64_t kind) { return kind == GRU ? 4 : (kind == LSTM ? 6 : (kind == GRU_BEFORE ? 3 : 0)); }

// One row's gate maths in the forward pass. gx, gh: this row's input and recurrent products.
template <typename T, int KIND>
inline void forward_row(const Problem<T>& p, const T* __restrict gx, const T* __restrict gh, const T* __restrict hp,
                        const T* __restrict cp, T* __restrict h, T* __restrict sv) {
  const int64_t n = p.n;
  const T* __restrict bx = p.bx;
  const T* __restrict bh = p.bh;
  if constexpr (KIND == GRU) {
    // Two loops, so that each has a shorter chain of dependent operations (r's sigmoid feeds the
    // tanh): one loop of both was 8% slower (GRU(32) inference, (256, 120, 14), avx2).
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
      sv[j] = sigmoid(gx[j] + bx[j] + gh[j] + bh[j]);
      sv[n + j] = sigmoid(gx[n + j] + bx[n + j] + gh[n + j] + bh[n + j]);
    }
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
      const T r = sv[j], z = sv[n + j];
      const T ghn = gh[2 * n + j] + bh[2 * n + j];
      const T c = tanh_(gx[2 * n + j] + bx[2 * n + j] + r * ghn);
      h[j] = c + z * (hp[j] - c);
      sv[2 * n + j] = c;
      sv[3 * n + j] = ghn;
    }
  } else if constexpr (KIND == LSTM) {
    // two loops, as for GRU: the gates, then the cell's tanh
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
      const T i = sigmoid(gx[j] + bx[j] + gh[j]);
      const T f = sigmoid(gx[n + j] + bx[n + j] + gh[n + j]);
      const T g = tanh_(gx[2 * n + j] + bx[2 * n + j] + gh[2 * n + j]);
      sv[j] = i;
      sv[n + j] = f;
      sv[2 * n + j] = g;
      sv[3 * n + j] = sigmoid(gx[3 * n + j] + bx[3 * n + j] + gh[3 * n + j]);
      sv[4 * n + j] = f * cp[j] + i * g;
    }
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
      const T tc = tanh_(sv[4 * n + j]);
      h[j] = sv[3 * n + j] * tc;
      sv[5 * n + j] = tc;
    }
  } else if constexpr (KIND == GRU_BEFORE) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
      const T z = sv[n + j];
      const T c = tanh_(gx[2 * n + j] + bx[2 * n + j] + gh[2 * n + j]);
      h[j] = c + z * (hp[j] - c);
      sv[2 * n + j] = c;
    }
  } else if constexpr (KIND == RNN_TANH) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) h[j] = tanh_(gx[j] + bx[j] + gh[j]);
  } else {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) h[j] = std::max(gx[j] + bx[j] + gh[j], T(0));
  }
}

template <typename T, int KIND>
void forward_rows(const Problem<T>& p, int64_t b0, int64_t b1) {
  const int64_t n = p.n, m = p.m, Np = p.Np;
  const int64_t R = std::min(RBLK, b1 - b0);  // rows of a block (fewer in a smaller chunk)
  Buffer<T> gx_buf(R * Np), gh_buf(R * Np), hm_buf(R * n);
  T *gx = gx_buf.data(), *gh = gh_buf.data(), *hm = hm_buf.data();
  // With a mask ("sample" recurrent dropout), h ⊙ mask for the next step's product is written as
  // each row's h is made, while it is in cache, into next_buf (the chunk's rows): a separate pass
  // over h_{t-1} before each product read it back from H, a row per page.
  const bool carry_mask = p.masked && KIND != GRU_BEFORE;
  Buffer<T> next_buf(carry_mask ? (b1 - b0) * n : 0);
  for (int64_t s = 0; s < p.steps; s++) {
    const int64_t t = p.t_in(s);
    for (int64_t r0 = b0; r0 < b1; r0 += RBLK) {
      const int64_t rows = std::min(RBLK, b1 - r0);
      {  // the next block's input rows (this step's next block, or the next step's first)
        const int64_t nr0 = r0 + RBLK < b1 ? r0 + RBLK : b0, ns = r0 + RBLK < b1 ? s : s + 1;
        if (ns < p.steps)
          for (int64_t b = nr0; b < std::min(nr0 + RBLK, b1); b++)
            prefetch(p.x + (b * p.steps + p.t_in(ns)) * m, m * sizeof(T));
      }
      gemm<T, false>(rows, Np, m, p.x + (r0 * p.steps + t) * m, p.steps * m, 1, p.wihT, Np, gx, Np);
      // h_{t-1} ⊙ mask, the recurrent kernel's input (without a mask, h_{t-1} where it is)
      const T* hin = p.h_prev(r0, s);
      int64_t hin_stride = p.h_prev_stride(s);
      if (carry_mask) {
        if (s == 0)
          for (int64_t i = 0; i < rows; i++) {
            const T* __restrict hp = p.h0 + (r0 + i) * n;
            const T* __restrict mk = p.mask + (r0 + i) * p.mask_stride;
            T* __restrict out = next_buf.data() + (r0 - b0 + i) * n;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) out[j] = hp[j] * mk[j];
          }
        hin = next_buf.data() + (r0 - b0) * n;
        hin_stride = n;
      } else if (p.masked || KIND == GRU_BEFORE) {
        for (int64_t i = 0; i < rows; i++) {
          const T* __restrict hp = p.h_prev(r0 + i, s);
          const T* __restrict mk = p.mask + (r0 + i) * p.mask_stride;
          T* __restrict out = hm + i * n;
#pragma omp simd
          for (int64_t j = 0; j < n; j++) out[j] = hp[j] * mk[j];
        }
        hin = hm;
        hin_stride = n;
      }
      gemm<T, false>(rows, Np, n, hin, hin_stride, 1, p.whhT, Np, gh, Np);
      if constexpr (KIND == GRU_BEFORE) {
        // r and z first; then U_n (r ⊙ h ⊙ mask) joins the n block of gh (hm becomes r ⊙ hm)
        for (int64_t i = 0; i < rows; i++) {
          const int64_t b = r0 + i;
          const T* __restrict a = gx + i * Np;
          const T* __restrict c = gh + i * Np;
          const T* __restrict bx = p.bx;
          T* __restrict sv = p.saved(b, s);
          T* __restrict rh = hm + i * n;
#pragma omp simd
          for (int64_t j = 0; j < n; j++) {
            const T r = sigmoid(a[j] + bx[j] + c[j]);
            sv[j] = r;
            sv[n + j] = sigmoid(a[n + j] + bx[n + j] + c[n + j]);
            rh[j] = r * rh[j];
          }
        }
        gemm<T, true>(rows, Np, n, hm, n, 1, p.whhT_n, Np, gh, Np);
      }
      for (int64_t i = 0; i < rows; i++) {
        const int64_t b = r0 + i;
        T* h = p.H + (b * p.steps + s) * n;
        if (p.padded(b, s)) {  // a padded step keeps the state (Keras's masking)
          std::memcpy(h, p.h_prev(b, s), n * sizeof(T));
          if constexpr (KIND == LSTM) std::memcpy(p.saved(b, s) + 4 * n, p.c_prev(b, s), n * sizeof(T));
          continue;
        }
        forward_row<T, KIND>(p, gx + i * Np, gh + i * Np, p.h_prev(b, s), KIND == LSTM ? p.c_prev(b, s) : nullptr, h,
                             p.save ? p.saved(b, s) : nullptr);
        if (carry_mask) {  // a padded row keeps its h, and so its h ⊙ mask
          const T* __restrict mk = p.mask + b * p.mask_stride;
          T* __restrict out = next_buf.data() + (b - b0) * n;
#pragma omp simd
          for (int64_t j = 0; j < n; j++) out[j] = h[j] * mk[j];
        }
      }
    }
  }
}

// One row's gate maths in the backward pass: dh = carry + dy; writes the gradients of the
// input pre-activations (dgx) and of the recurrent products (dgh; the same buffer except for
// GRU), and leaves in carry the part of dh_{t-1} that does not go through the recurrent kernel.
template <typename T, int KIND>
inline void backward_row(const Problem<T>& p, const T* __restrict sv, const T* __restrict h, const T* __restrict hp,
                         const T* __restrict cp, const T* __restrict dy, T* __restrict carry, T* __restrict carry_c,
                         T* __restrict dgx, T* __restrict dgh) {
  const int64_t n = p.n;
  if constexpr (KIND == GRU) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
      const T dh = carry[j] + dy[j];
      const T r = sv[j], z = sv[n + j], c = sv[2 * n + j], ghn = sv[3 * n + j];
      const T dpc = dh * (T(1) - z) * (T(1) - c * c);
      const T dpz = dh * (hp[j] - c) * z * (T(1) - z);
      const T dghn = dpc * r;
      const T dpr = dpc * ghn * r * (T(1) - r);
      dgx[j] = dpr;
      dgx[n + j] = dpz;
      dgx[2 * n + j] = dpc;
      dgh[j] = dpr;
      dgh[n + j] = dpz;
      dgh[2 * n + j] = dghn;
      carry[j] = dh * z;
    }
  } else if constexpr (KIND == GRU_BEFORE) {
    // phase 1: the z and n blocks (the r block needs U_nᵀ dpc first, see backward_rows)
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
      const T dh = carry[j] + dy[j];
      const T z = sv[n + j], c = sv[2 * n + j];
      const T dpc = dh * (T(1) - z) * (T(1) - c * c);
      dgx[n + j] = dh * (hp[j] - c) * z * (T(1) - z);
      dgx[2 * n + j] = dpc;
      dgh[2 * n + j] = dpc;
      carry[j] = dh * z;
    }
  } else if constexpr (KIND == LSTM) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
      const T dh = carry[j] + dy[j];
      const T i = sv[j], f = sv[n + j], g = sv[2 * n + j], o = sv[3 * n + j], tc = sv[5 * n + j];
      const T dc = carry_c[j] + dh * o * (T(1) - tc * tc);
      dgx[j] = dc * g * i * (T(1) - i);
      dgx[n + j] = dc * cp[j] * f * (T(1) - f);
      dgx[2 * n + j] = dc * i * (T(1) - g * g);
      dgx[3 * n + j] = dh * tc * o * (T(1) - o);
      carry_c[j] = dc * f;
      carry[j] = T(0);
    }
  } else if constexpr (KIND == RNN_TANH) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
      dgx[j] = (carry[j] + dy[j]) * (T(1) - h[j] * h[j]);
      carry[j] = T(0);
    }
  } else {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
      dgx[j] = h[j] > T(0) ? carry[j] + dy[j] : T(0);
      carry[j] = T(0);
    }
  }
}

template <typename T>
struct Grads {
  const T* dH;  // (batch, steps, n) or zeros with dH_stride 0
  int64_t dH_row, dH_step;
  T* carry;    // (batch, n): in: dh_last; out: dh0
  T* carry_c;  // (batch, n): in: dc_last; out: dc0 (LSTM)
  T* dx;       // (batch, steps, m) or nullptr
  T* dwihT;    // per chunk (m, Np)
  T* dwhhT;    // per chunk (n, Np)
  T* dbx;      // per chunk (Np,)
  T* dbh;      // per chunk (Np,)
};

template <typename T, int KIND>
void backward_rows(const Problem<T>& p, const Grads<T>& g, int64_t chunk, int64_t b0, int64_t b1) {
  const int64_t n = p.n, m = p.m, Np = p.Np, np = p.np, mp = p.mp, Gn = p.G * n;
  constexpr bool two = KIND == GRU || KIND == GRU_BEFORE;  // dG of the recurrent product differs from dG of x
  // Few rows (a chunk smaller than a block, e.g. batch 1): the weight gradients of TB steps are
  // summed in one product of K = TB · rows, so that dW is read and written once per TB steps, not
  // once per step (at batch 1 that traffic made LSTM(128)'s backward slower than PyTorch's).
  const int64_t TB = KIND == GRU_BEFORE || b1 - b0 >= RBLK ? 1 : std::min<int64_t>(p.steps, RBLK / (b1 - b0));
  // the buffers hold the rows of one block (fewer in a smaller chunk: sized for RBLK rows, the
  // zero fill of TB blocks was 8% of GRU(8)'s batch-1 training call)
  const int64_t R = std::min(RBLK, b1 - b0);
  Buffer<T> dgx_buf(TB * R * Np, T(0)), dgh_buf(two ? TB * R * Np : 0, T(0)), back_buf(R * np),
      hm_buf(TB * R * n), x_buf(TB > 1 ? TB * R * m : 0), dx_buf(g.dx ? R * mp : 0);
  // GRU_BEFORE: dgh holds [0, 0, dpc] (with r ⊙ hm), dgr [dpr, dpz, 0] (with hm); drh = U_nᵀ dpc
  Buffer<T> dgr_buf(KIND == GRU_BEFORE ? R * Np : 0, T(0)), drh_buf(KIND == GRU_BEFORE ? R * np : 0),
      rh_buf(KIND == GRU_BEFORE ? R * n : 0);
  T* dgx = dgx_buf.data();
  T* dgh = two ? dgh_buf.data() : dgx;
  T *back = back_buf.data(), *hm = hm_buf.data();
  T* dwihT = g.dwihT + chunk * m * Np;
  T* dwhhT = g.dwhhT + chunk * n * Np;
  T* dbx = g.dbx + chunk * Np;
  T* dbh = g.dbh + chunk * Np;
  for (int64_t s = p.steps - 1; s >= 0; s--) {
    const int64_t t = p.t_in(s);
    for (int64_t r0 = b0; r0 < b1; r0 += RBLK) {
      const int64_t rows = std::min(RBLK, b1 - r0);
      {  // the next block's saved values, states, output gradients and inputs
        const int64_t nr0 = r0 + RBLK < b1 ? r0 + RBLK : b0, ns = r0 + RBLK < b1 ? s : s - 1;
        if (ns >= 0) {
          const int64_t nrows = std::min(RBLK, b1 - nr0);
          if (p.save) prefetch(p.saved(nr0, ns), nrows * p.save * n * sizeof(T));
          for (int64_t b = nr0; b < nr0 + nrows; b++) {
            prefetch(p.h_prev(b, ns), n * sizeof(T));
            if (g.dH_row) prefetch(g.dH + b * g.dH_row + ns * g.dH_step, n * sizeof(T));
            prefetch(p.x + (b * p.steps + p.t_in(ns)) * m, m * sizeof(T));
          }
        }
      }
      const int64_t slot = (p.steps - 1 - s) % TB;  // TB > 1: one block of rows, TB steps side by side
      dgx = dgx_buf.data() + slot * rows * Np;
      dgh = two ? dgh_buf.data() + slot * rows * Np : dgx;
      hm = hm_buf.data() + slot * rows * n;
      for (int64_t i = 0; i < rows; i++) {
        const int64_t b = r0 + i;
        if (p.padded(b, s)) {  // the state passed through unchanged: so does its gradient
          const T* __restrict dy = g.dH + b * g.dH_row + s * g.dH_step;
          T* __restrict cr = g.carry + b * n;
          for (int64_t j = 0; j < n; j++) cr[j] += dy[j];
          std::fill(dgx + i * Np, dgx + (i + 1) * Np, T(0));
          if constexpr (two) std::fill(dgh + i * Np, dgh + (i + 1) * Np, T(0));
          continue;
        }
        backward_row<T, KIND>(p, p.save ? p.saved(b, s) : nullptr, p.H + (b * p.steps + s) * n, p.h_prev(b, s),
                              KIND == LSTM ? p.c_prev(b, s) : nullptr, g.dH + b * g.dH_row + s * g.dH_step,
                              g.carry + b * n, KIND == LSTM ? g.carry_c + b * n : nullptr, dgx + i * Np, dgh + i * Np);
      }
      if constexpr (KIND == GRU_BEFORE) {
        // phase 2: d(r ⊙ hm) = dpc · U_n; the r block; the carry's share through r ⊙ hm
        T* drh = drh_buf.data();
        T* dgr = dgr_buf.data();
        T* rh = rh_buf.data();
        gemm<T, false>(rows, np, n, dgx + 2 * n, Np, 1, p.whhP + 2 * n * np, np, drh, np);
        for (int64_t i = 0; i < rows; i++) {
          const int64_t b = r0 + i;
          if (p.padded(b, s)) {
            std::fill(dgr + i * Np, dgr + (i + 1) * Np, T(0));
            std::fill(rh + i * n, rh + (i + 1) * n, T(0));
            continue;
          }
          const T* __restrict sv = p.saved(b, s);
          const T* __restrict hp = p.h_prev(b, s);
          const T* __restrict mk = p.mask + b * p.mask_stride;
          const T* __restrict d = drh + i * np;
          T* __restrict cr = g.carry + b * n;
          T* __restrict gxr = dgx + i * Np;
          T* __restrict gr = dgr + i * Np;
          T* __restrict rhi = rh + i * n;
#pragma omp simd
          for (int64_t j = 0; j < n; j++) {
            const T r = sv[j], hm_j = hp[j] * mk[j];
            const T dpr = d[j] * hm_j * r * (T(1) - r);
            gxr[j] = dpr;
            gr[j] = dpr;
            gr[n + j] = gxr[n + j];
            rhi[j] = r * hm_j;
            cr[j] += d[j] * r * mk[j];
          }
        }
      }
      // dh_{t-1} += (dG · W_hh) ⊙ mask (GRU_BEFORE: the r and z blocks only)
      if constexpr (KIND == GRU_BEFORE)
        gemm<T, false>(rows, np, 2 * n, dgx, Np, 1, p.whhP, np, back, np);
      else
        gemm<T, false>(rows, np, Gn, dgh, Np, 1, p.whhP, np, back, np);
      for (int64_t i = 0; i < rows; i++) {
        const int64_t b = r0 + i;
        const T* __restrict bk = back + i * np;
        const T* __restrict mk = p.mask + b * p.mask_stride;
        const T* __restrict hp = p.h_prev(b, s);
        T* __restrict cr = g.carry + b * n;
        T* __restrict hmi = hm + i * n;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) {
          cr[j] += bk[j] * mk[j];
          hmi[j] = hp[j] * mk[j];
        }
      }
      // weight gradients as Xᵀ·dG while dG is in cache: (n, Np) and (m, Np)
      if constexpr (KIND == GRU_BEFORE) {
        gemm<T, true>(n, Np, rows, hm, 1, n, dgr_buf.data(), Np, dwhhT, Np);
        gemm<T, true>(n, Np, rows, rh_buf.data(), 1, n, dgh, Np, dwhhT, Np);
      } else if (TB == 1) {
        gemm<T, true>(n, Np, rows, hm, 1, n, dgh, Np, dwhhT, Np);
      }
      if (TB == 1) {
        gemm<T, true>(m, Np, rows, p.x + (r0 * p.steps + t) * m, 1, p.steps * m, dgx, Np, dwihT, Np);
      } else {
        for (int64_t i = 0; i < rows; i++)
          std::memcpy(x_buf.data() + (slot * rows + i) * m, p.x + ((r0 + i) * p.steps + t) * m, m * sizeof(T));
        if (slot == TB - 1 || s == 0) {  // the TB steps' products at once: K = (slot + 1) · rows
          const int64_t K = (slot + 1) * rows;
          if constexpr (KIND != GRU_BEFORE) gemm<T, true>(n, Np, K, hm_buf.data(), 1, n, two ? dgh_buf.data() : dgx_buf.data(), Np, dwhhT, Np);
          gemm<T, true>(m, Np, K, x_buf.data(), 1, m, dgx_buf.data(), Np, dwihT, Np);
        }
      }
      for (int64_t i = 0; i < rows; i++) {
        const T* __restrict a = dgx + i * Np;
        const T* __restrict c = dgh + i * Np;
#pragma omp simd
        for (int64_t j = 0; j < Np; j++) {
          dbx[j] += a[j];
          dbh[j] += c[j];
        }
      }
      if (g.dx) {
        T* dxl = dx_buf.data();
        gemm<T, false>(rows, mp, Gn, dgx, Np, 1, p.wihP, mp, dxl, mp);
        for (int64_t i = 0; i < rows; i++) std::memcpy(g.dx + ((r0 + i) * p.steps + t) * m, dxl + i * mp, m * sizeof(T));
      }
    }
  }
}

// Work sharing: the batch is cut into chunks of rows, each run through the whole time loop by
// one thread (no barrier between steps). With one thread, one chunk. With several, chunks of at
// least RBLK rows, about four per thread, taken from a shared counter: a thread whose core is
// shared with another busy process takes fewer chunks instead of holding the others up (with a
// static split, two threads ran slower than one on a loaded machine).
int64_t chunk_count(int64_t batch) {
  const int64_t threads = at::get_num_threads();
  if (threads <= 1 || batch < 2 * RBLK) return 1;
  const int64_t rows = std::max<int64_t>(RBLK, round_up((batch + 4 * threads - 1) / (4 * threads), RBLK));
  return (batch + rows - 1) / rows;
}

template <typename F>
void for_chunks(int64_t batch, int64_t chunks, F&& body) {
  const int64_t per = (batch + chunks - 1) / chunks;
  if (chunks == 1) {
    body(0, 0, batch);
    return;
  }
#ifdef RNNKIT_CSR
  const unsigned csr = _mm_getcsr();  // the caller's flush-denormal setting, for every worker
#endif
  std::atomic<int64_t> next{0};
  const int64_t workers = std::min<int64_t>(at::get_num_threads(), chunks);
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
#ifdef RNNKIT_CSR
    const unsigned own = _mm_getcsr();
    _mm_setcsr(csr);
#endif
    for (int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) {
      const int64_t b0 = c * per, b1 = std::min(batch, b0 + per);
      if (b0 < b1) body(c, b0, b1);
    }
#ifdef RNNKIT_CSR
    _mm_setcsr(own);
#endif
  });
}

template <typename T>
Problem<T> make_problem(int64_t kind, bool reverse, int64_t n, const at::Tensor& x, const at::Tensor& h0,
                        const at::Tensor& c0, const at::Tensor& wihT, const at::Tensor& whhT,
                        const at::Tensor& wihP, const at::Tensor& whhP, const at::Tensor& bx, const at::Tensor& bh, const at::Tensor& mask,
                        const at::Tensor& H, const at::Tensor& S) {
  Problem<T> p;
  p.kind = kind;
  p.reverse = reverse;
  p.batch = x.size(0);
  p.steps = x.size(1);
  p.m = x.size(2);
  p.n = n;
  p.G = (kind == GRU || kind == GRU_BEFORE) ? 3 : (kind == LSTM ? 4 : 1);
  const int64_t W = lanes<T>;
  p.Np = round_up(p.G * p.n, W);
  p.np = round_up(p.n, W);
  p.mp = round_up(p.m, W);
  p.x = x.data_ptr<T>();
  p.h0 = h0.numel() ? h0.data_ptr<T>() : nullptr;
  p.c0 = kind == LSTM && c0.numel() ? c0.data_ptr<T>() : nullptr;
  p.wihT = wihT.defined() ? wihT.data_ptr<T>() : nullptr;
  p.whhT = whhT.defined() ? whhT.data_ptr<T>() : nullptr;
  p.whhT_n = nullptr;
  p.wihP = wihP.defined() ? wihP.data_ptr<T>() : nullptr;
  p.whhP = whhP.defined() ? whhP.data_ptr<T>() : nullptr;
  p.bx = bx.defined() ? bx.data_ptr<T>() : nullptr;
  p.bh = bh.defined() ? bh.data_ptr<T>() : nullptr;
  p.mask = mask.defined() ? mask.data_ptr<T>() : nullptr;
  p.mask_stride = mask.defined() && mask.dim() == 2 ? p.n : 0;
  p.masked = true;
  p.save = saved_values(kind);
  p.ring = false;
  p.H = H.data_ptr<T>();
  p.S = S.numel() ? S.data_ptr<T>() : nullptr;
  p.real = nullptr;
  return p;
}

struct Prepared {
  at::Tensor x, h0, c0, bx, bh, mask;
};

Prepared prepare(int64_t kind, const at::Tensor& x, const at::Tensor& h0, const at::Tensor& c0,
                 const at::Tensor& w_ih, const at::Tensor& b_ih, const at::Tensor& b_hh, const at::Tensor& mask) {
  TORCH_CHECK(x.dim() == 3 && h0.dim() == 2, "rnnkit kernel: x must be (batch, time, m) and h0 (batch, n)");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, "rnnkit kernel: float32 or float64 only");
  const int64_t Gn = w_ih.size(0), n = h0.size(1);
  Prepared q;
  q.x = x.contiguous();
  q.h0 = h0.contiguous();
  q.c0 = kind == LSTM ? c0.contiguous() : at::Tensor();
  q.bx = b_ih.numel() ? b_ih.contiguous() : at::zeros({Gn}, x.options());
  q.bh = b_hh.numel() ? b_hh.contiguous() : at::zeros({Gn}, x.options());
  q.mask = mask.numel() ? mask.contiguous() : at::ones({n}, x.options());
  return q;
}

// t itself where it is contiguous: no operator call (each is a dispatch, a microsecond or so)
at::Tensor dense(const at::Tensor& t) { return t.is_contiguous() ? t : t.contiguous(); }

// w (rows, cols), any strides -> out (cols, ld) = wᵀ, zeros past its rows: a loop, not ATen
// operators, whose dispatch was a large part of a batch-1 inference call. Taken in blocks of 8 of
// w's rows, so that each row of out gets 8 consecutive values at a time, and each value is written
// once (a zero fill of all of out and then one value per line of out, as before, was 14% of
// LSTM(32)'s batch-1 inference call, and LSTM(128)'s ran 1.4-2.0x as fast without it)
template <typename T>
void transposed_padded(const at::Tensor& w, int64_t ld, T* out) {
  const int64_t rows = w.size(0), cols = w.size(1), s0 = w.stride(0), s1 = w.stride(1);
  const T* a = w.data_ptr<T>();
  constexpr int64_t R = 8;
  int64_t r0 = 0;
  for (; r0 + R <= rows; r0 += R)
    for (int64_t c = 0; c < cols; c++) {
      T* __restrict o = out + c * ld + r0;
      const T* __restrict ac = a + r0 * s0 + c * s1;
      for (int64_t r = 0; r < R; r++) o[r] = ac[r * s0];
    }
  for (int64_t c = 0; c < cols; c++) {
    T* __restrict o = out + c * ld;
    for (int64_t r = r0; r < rows; r++) o[r] = a[r * s0 + c * s1];
    std::fill(o + rows, o + ld, T(0));
  }
}

// w (rows, cols), any strides -> out (rows, ld) = w, zeros past its columns (the backward pass's
// row-major copies of the weights)
template <typename T>
void row_padded(const at::Tensor& w, int64_t ld, T* out) {
  const int64_t rows = w.size(0), cols = w.size(1), s0 = w.stride(0), s1 = w.stride(1);
  const T* a = w.data_ptr<T>();
  for (int64_t r = 0; r < rows; r++) {
    T* __restrict o = out + r * ld;
    const T* __restrict ar = a + r * s0;
    for (int64_t c = 0; c < cols; c++) o[c] = ar[c * s1];
    std::fill(o + cols, o + ld, T(0));
  }
}

// The weight gradient from the chunks' transposed, padded sums: src (chunks, rows, ld) -> a new
// (cols, rows) tensor, out[g][c] = Σ over chunks (in order) of src[chunk][c][g], g < cols. Written in
// blocks of 8 of out's rows (the ATen sum(0), narrow, t and contiguous that did this were 12% of
// LSTM(128)'s batch-1 training call).
template <typename T>
at::Tensor summed_transposed(const at::Tensor& src, int64_t cols) {
  const int64_t chunks = src.size(0), rows = src.size(1), ld = src.size(2);
  auto out = at::empty({cols, rows}, src.options());
  const T* a = src.data_ptr<T>();
  T* o = out.data_ptr<T>();
  constexpr int64_t R = 8;
  for (int64_t g0 = 0; g0 < cols; g0 += R) {
    const int64_t g1 = std::min(g0 + R, cols);
    for (int64_t c = 0; c < rows; c++)
      for (int64_t g = g0; g < g1; g++) {
        T v = a[c * ld + g];
        for (int64_t k = 1; k < chunks; k++) v += a[(k * rows + c) * ld + g];
        o[g * rows + c] = v;
      }
  }
  return out;
}

// src (chunks, ld) -> a new (cols,) tensor: the chunks' sums, in order, of the first cols
template <typename T>
at::Tensor summed(const at::Tensor& src, int64_t cols) {
  const int64_t chunks = src.size(0), ld = src.size(1);
  auto out = at::empty({cols}, src.options());
  const T* a = src.data_ptr<T>();
  T* o = out.data_ptr<T>();
  for (int64_t g = 0; g < cols; g++) {
    T v = a[g];
    for (int64_t k = 1; k < chunks; k++) v += a[k * ld + g];
    o[g] = v;
  }
  return out;
}

// real: (batch, time) bool, false at padded steps, or empty (every step real). keep: whether the
// values the backward pass needs are kept for every step (training), or only for the step before
// (inference: a ring of two steps, which stays in cache; `saved` then holds those two steps)
std::vector<at::Tensor> forward_impl(int64_t kind, bool reverse, const at::Tensor& x_, const at::Tensor& h0_,
                                     const at::Tensor& c0_, const at::Tensor& w_ih, const at::Tensor& w_hh,
                                     const at::Tensor& b_ih, const at::Tensor& b_hh, const at::Tensor& mask_,
                                     const at::Tensor& real_, bool keep) {
  at::NoGradGuard no_grad;
  TORCH_CHECK(x_.dim() == 3 && (h0_.dim() == 2 || h0_.numel() == 0),
              "rnnkit kernel: x must be (batch, time, m) and h0 (batch, n), or empty for zeros");
  TORCH_CHECK(x_.scalar_type() == at::kFloat || x_.scalar_type() == at::kDouble, "rnnkit kernel: float32 or float64 only");
  const auto x = dense(x_), h0 = dense(h0_);
  const auto c0 = kind == LSTM ? dense(c0_) : at::Tensor();
  const auto bx = b_ih.numel() ? dense(b_ih) : at::Tensor(), bh = b_hh.numel() ? dense(b_hh) : at::Tensor();
  const auto mask = mask_.numel() ? dense(mask_) : at::Tensor();
  const int64_t batch = x.size(0), steps = x.size(1), m = x.size(2), n = w_hh.size(1), Gn = w_ih.size(0);
  const int64_t W = VBYTES / x.element_size();
  const int64_t Np = round_up(Gn, W);
  // an empty h0 (c0) is a zero state: no tensor of zeros made for it (a batch-1 call's microsecond)
  const bool zero_h = h0.numel() == 0, zero_c = kind == LSTM && c0.numel() == 0;
  auto H = at::empty({batch, steps, n}, x.options());
  auto real = real_.numel() ? real_.to(at::kBool).contiguous() : at::Tensor();
  auto S = at::empty({keep ? steps : std::min<int64_t>(steps, 2), batch, saved_values(kind) * n}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_forward", [&] {
    using T = scalar_t;
    Unset<T> wihT(m * Np), whhT(n * Np);
    Buffer<T> whhT_n(kind == GRU_BEFORE ? n * Np : 0, T(0));
    transposed_padded<T>(w_ih, Np, wihT.data());
    transposed_padded<T>(w_hh, Np, whhT.data());
    if (kind == GRU_BEFORE)  // U (r ⊙ h) for the n block: its own product, after r
      for (int64_t k = 0; k < n; k++)
        for (int64_t j = 2 * n; j < 3 * n; j++) std::swap(whhT_n[k * Np + j], whhT[k * Np + j]);
    const Buffer<T> zeros(bx.defined() && bh.defined() ? 0 : Gn, T(0)), ones(mask.defined() ? 0 : n, T(1));
    const Buffer<T> zero_state(zero_h || zero_c ? batch * n : 0, T(0));
    auto p = make_problem<T>(kind, reverse, n, x, h0, c0, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), bx, bh,
                             mask, H, S);
    if (zero_h) p.h0 = zero_state.data();
    if (zero_c) p.c0 = zero_state.data();
    p.wihT = wihT.data();
    p.whhT = whhT.data();
    p.whhT_n = kind == GRU_BEFORE ? whhT_n.data() : nullptr;
    if (!bx.defined()) p.bx = zeros.data();
    if (!bh.defined()) p.bh = zeros.data();
    if (!mask.defined()) {
      p.mask = ones.data();
      p.mask_stride = 0;
    }
    p.masked = mask.defined();
    p.real = real.defined() ? real.data_ptr<bool>() : nullptr;
    p.ring = !keep;
    const int64_t chunks = chunk_count(batch);
    for_chunks(batch, chunks, [&](int64_t, int64_t b0, int64_t b1) {
      switch (kind) {
        case RNN_TANH: forward_rows<T, RNN_TANH>(p, b0, b1); break;
        case RNN_RELU: forward_rows<T, RNN_RELU>(p, b0, b1); break;
        case GRU: forward_rows<T, GRU>(p, b0, b1); break;
        case GRU_BEFORE: forward_rows<T, GRU_BEFORE>(p, b0, b1); break;
        default: forward_rows<T, LSTM>(p, b0, b1); break;
      }
    });
  });
  // the final states, copied row by row (one allocation each, not three operators)
  const int64_t last = keep ? steps - 1 : ((steps - 1) & 1), bytes = n * x.element_size(), save = saved_values(kind);
  auto h_last = at::empty({batch, n}, x.options());
  at::Tensor c_last = kind == LSTM ? at::empty({batch, n}, x.options()) : at::Tensor();
  const char* Hp = static_cast<const char*>(H.data_ptr());
  const char* Sp = static_cast<const char*>(S.data_ptr());
  for (int64_t b = 0; b < batch; b++) {
    std::memcpy(static_cast<char*>(h_last.data_ptr()) + b * bytes, Hp + (b * steps + steps - 1) * bytes, bytes);
    if (kind == LSTM)
      std::memcpy(static_cast<char*>(c_last.data_ptr()) + b * bytes, Sp + ((last * batch + b) * save + 4) * bytes, bytes);
  }
  return {H, h_last, c_last, S};
}

std::vector<at::Tensor> forward(int64_t kind, bool reverse, const at::Tensor& x, const at::Tensor& h0,
                                const at::Tensor& c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
                                const at::Tensor& b_ih, const at::Tensor& b_hh, const at::Tensor& mask,
                                const at::Tensor& real) {
  return forward_impl(kind, reverse, x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask, real, true);
}

std::vector<at::Tensor> infer(int64_t kind, bool reverse, const at::Tensor& x, const at::Tensor& h0,
                              const at::Tensor& c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
                              const at::Tensor& b_ih, const at::Tensor& b_hh, const at::Tensor& mask,
                              const at::Tensor& real) {
  return forward_impl(kind, reverse, x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask, real, false);
}

// Returns dx (or undefined), dh0, dc0 (LSTM), dw_ih, dw_hh, db_ih, db_hh (GRU; else undefined).
std::vector<at::Tensor> backward(int64_t kind, bool reverse, bool need_dx, const at::Tensor& x_, const at::Tensor& h0_,
                                 const at::Tensor& c0_, const at::Tensor& w_ih, const at::Tensor& w_hh,
                                 const at::Tensor& b_ih, const at::Tensor& b_hh, const at::Tensor& mask_,
                                 const at::Tensor& real_, const at::Tensor& H, const at::Tensor& S,
                                 const at::Tensor& dH_, const at::Tensor& dh_last, const at::Tensor& dc_last) {
  at::NoGradGuard no_grad;
  auto q = prepare(kind, x_, h0_, c0_, w_ih, b_ih, b_hh, mask_);
  const int64_t batch = q.x.size(0), steps = q.x.size(1), m = q.x.size(2), n = q.h0.size(1), Gn = w_ih.size(0);
  const int64_t W = VBYTES / q.x.element_size();
  const int64_t Np = round_up(Gn, W), np = round_up(n, W), mp = round_up(m, W);
  auto opts = q.x.options();
  auto wihT = at::empty({m, Np}, opts), whhT = at::empty({n, Np}, opts);
  auto wihP = at::empty({Gn, mp}, opts), whhP = at::empty({Gn, np}, opts);
  at::Tensor dH = dH_.numel() ? dH_.contiguous() : at::zeros({n}, opts);
  auto carry = dh_last.numel() ? dh_last.contiguous().clone() : at::zeros({batch, n}, opts);
  auto carry_c = kind == LSTM ? (dc_last.numel() ? dc_last.contiguous().clone() : at::zeros({batch, n}, opts))
                              : at::Tensor();
  auto dx = need_dx ? at::empty({batch, steps, m}, opts) : at::Tensor();
  auto real = real_.numel() ? real_.to(at::kBool).contiguous() : at::Tensor();
  const int64_t chunks = chunk_count(batch);
  auto dwihT = at::zeros({chunks, m, Np}, opts), dwhhT = at::zeros({chunks, n, Np}, opts);
  auto dbx = at::zeros({chunks, Np}, opts), dbh = at::zeros({chunks, Np}, opts);
  at::Tensor dw_ih, dw_hh, db_ih, db_hh;
  AT_DISPATCH_FLOATING_TYPES(q.x.scalar_type(), "rnnkit_backward", [&] {
    // the weights' copies as loops, not ATen operators (a zero fill and a copy each)
    transposed_padded<scalar_t>(w_ih, Np, wihT.data_ptr<scalar_t>());
    transposed_padded<scalar_t>(w_hh, Np, whhT.data_ptr<scalar_t>());
    row_padded<scalar_t>(w_ih, mp, wihP.data_ptr<scalar_t>());
    row_padded<scalar_t>(w_hh, np, whhP.data_ptr<scalar_t>());
    auto p = make_problem<scalar_t>(kind, reverse, n, q.x, q.h0, q.c0, wihT, whhT, wihP, whhP, q.bx, q.bh, q.mask,
                                    H, S);
    p.real = real.defined() ? real.data_ptr<bool>() : nullptr;
    p.masked = mask_.numel() > 0;
    Grads<scalar_t> g;
    g.dH = dH.data_ptr<scalar_t>();
    g.dH_row = dH_.numel() ? steps * n : 0;
    g.dH_step = dH_.numel() ? n : 0;
    g.carry = carry.data_ptr<scalar_t>();
    g.carry_c = kind == LSTM ? carry_c.data_ptr<scalar_t>() : nullptr;
    g.dx = need_dx ? dx.data_ptr<scalar_t>() : nullptr;
    g.dwihT = dwihT.data_ptr<scalar_t>();
    g.dwhhT = dwhhT.data_ptr<scalar_t>();
    g.dbx = dbx.data_ptr<scalar_t>();
    g.dbh = dbh.data_ptr<scalar_t>();
    for_chunks(batch, chunks, [&](int64_t c, int64_t b0, int64_t b1) {
      switch (kind) {
        case RNN_TANH: backward_rows<scalar_t, RNN_TANH>(p, g, c, b0, b1); break;
        case RNN_RELU: backward_rows<scalar_t, RNN_RELU>(p, g, c, b0, b1); break;
        case GRU: backward_rows<scalar_t, GRU>(p, g, c, b0, b1); break;
        case GRU_BEFORE: backward_rows<scalar_t, GRU_BEFORE>(p, g, c, b0, b1); break;
        default: backward_rows<scalar_t, LSTM>(p, g, c, b0, b1); break;
      }
    });
    dw_ih = summed_transposed<scalar_t>(dwihT, Gn);
    dw_hh = summed_transposed<scalar_t>(dwhhT, Gn);
    db_ih = summed<scalar_t>(dbx, Gn);
    if (kind == GRU) db_hh = summed<scalar_t>(dbh, Gn);
  });
  return {dx, carry, carry_c, dw_ih, dw_hh, db_ih, db_hh};
}

}  // namespace

// The float32 multiply-add rate of this build's vectors on one thread, in GFLOP/s: 12 independent
// accumulators (enough to cover the FMA latency on 16 registers), for about `seconds`. The
// benchmarks report the kernel's share of it.
double peak_gflops(double seconds) {
  typedef float V __attribute__((vector_size(VBYTES)));
  constexpr int A = 12;
  V acc[A], b = V{} + 1.0000001f, c = V{} + 1e-7f;
  for (int i = 0; i < A; i++) acc[i] = V{} + float(i);
  int64_t rounds = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    for (int64_t it = 0; it < 4096; it++) {
#pragma GCC unroll 12
      for (int i = 0; i < A; i++) acc[i] = acc[i] * b + c;
    }
    rounds++;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < seconds);
  float sink = 0;
  for (int i = 0; i < A; i++) sink += acc[i][0];
  volatile float keep = sink;
  (void)keep;
  return 2.0 * A * (VBYTES / 4) * 4096.0 * rounds / elapsed / 1e9;
}

// What this build is: its vector width and register count, the register tiles they give, and
// whether A is broadcast into a copy first (the SSE builds, see `gemm`).
std::map<std::string, int64_t> build_info() {
  return {{"vector_bytes", VBYTES}, {"vector_registers", VREGS}, {"rows_per_block", RBLK},
          {"tile_rows_3", rows_for<3>}, {"tile_rows_2", rows_for<2>}, {"tile_rows_1", rows_for<1>},
          {"a_broadcast_copy", PREBROADCAST ? 1 : 0}};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.def("peak_gflops", &peak_gflops, "float32 multiply-add GFLOP/s of this build's vectors, one thread");
  module.def("info", &build_info, "the build's vector width, register count and tile shapes");
  module.def("forward", &forward, "whole-sequence forward: [H, h_last, c_last, saved]");
  module.def("infer", &infer, "the forward for inference, keeping two steps of saved values: [H, h_last, c_last, _]");
  module.def("backward", &backward, "whole-sequence backward: [dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh]");
}
