// The sampling kernel (sampling.h). One CTA of kSampleThreads threads per sample:
//   1. one pass: max logit, its lowest id, and sum exp(logit - max) (online, fixed-order merge);
//      greedy rows stop here;
//   2. top-k: radix select (4 rounds of 8-bit digits, MSB first) of the k-th largest key by
//      count, then the cut among keys equal to it by id (find_crossing);
//   3. top-p: the same radix select by fixed-point mass within the kept set;
//   4. the draw: the first id whose cumulative mass (in id order, kept set only) exceeds
//      u * total.
// A kept set is (thr, cut): id i is kept iff key_i > thr, or key_i == thr and i <= cut, where key
// is the logit's order-preserving 32-bit image. Every reduction is over integers or in a fixed
// order, so the result never depends on timing.
#pragma once

#include <cmath>

#include "counter_random.cuh"
#include "device_common.cuh"
#include "sampling.h"

namespace canopy::kernels {

inline constexpr int kSampleThreads = 512;
inline constexpr int kSampleWarps = kSampleThreads / 32;

struct SampleSmem {
  unsigned long long hist[256];
  unsigned long long warp_u64[kSampleWarps];
  float warp_m[kSampleWarps];
  float warp_s[kSampleWarps];
  int32_t warp_a[kSampleWarps];
  float final_m;
  float final_s;
  int32_t final_a;
  int32_t found_warp;
  int32_t result;
  uint32_t digit;
  unsigned long long found_base;
  unsigned long long above;
};
inline constexpr int kSampleSmemBytes = static_cast<int>(sizeof(SampleSmem));

__device__ __forceinline__ float sample_neg_inf() { return -__uint_as_float(0x7f800000u); }

// NaN counts as -inf; +inf as the largest float (so that max - logit stays finite).
__device__ __forceinline__ float logit_value(float x) {
  const uint32_t u = __float_as_uint(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return sample_neg_inf();
  if (u == 0x7f800000u) return 3.402823466e38f;
  return x;
}

// Order-preserving image of logit_value(x): a > b as floats iff key(a) > key(b) (and -0 == +0).
__device__ __forceinline__ uint32_t logit_key(float x) {
  uint32_t u = __float_as_uint(logit_value(x));
  if (u == 0x80000000u) u = 0u;
  return (u & 0x80000000u) != 0u ? ~u : (u | 0x80000000u);
}

// (max, sum of exp(x - max), lowest id of the max); a < 0: no element yet.
struct MaxSum {
  float m;
  float s;
  int32_t a;
};

// Commutative bit for bit (no contraction into fma), so the butterfly leaves every lane equal.
__device__ __forceinline__ MaxSum combine_max_sum(const MaxSum& x, const MaxSum& y) {
  if (x.a < 0) return y;
  if (y.a < 0) return x;
  MaxSum r;
  r.m = fmaxf(x.m, y.m);
  r.a = (x.m > y.m || (x.m == y.m && x.a < y.a)) ? x.a : y.a;
  if (r.m == sample_neg_inf()) {
    r.s = 0.0f;
  } else {
    r.s = __fadd_rn(__fmul_rn(x.s, expf(x.m - r.m)), __fmul_rn(y.s, expf(y.m - r.m)));
  }
  return r;
}

__device__ __forceinline__ MaxSum warp_max_sum(MaxSum v) {
CANOPY_UNROLL
  for (int offset = 16; offset > 0; offset >>= 1) {
    MaxSum o;
    o.m = __shfl_xor_sync(kFullWarp, v.m, offset);
    o.s = __shfl_xor_sync(kFullWarp, v.s, offset);
    o.a = __shfl_xor_sync(kFullWarp, v.a, offset);
    v = combine_max_sum(v, o);
  }
  return v;
}

// Smallest id i in [0, vocab) with weight(0) + ... + weight(i) >= target (target >= 1), or -1.
// Warps own contiguous id ranges; the warp holding the crossing scans its range in id order.
template <class Weight>
__device__ int find_crossing(int vocab, unsigned long long target, const Weight& weight, SampleSmem& sm) {
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int span = ((vocab + kSampleWarps - 1) / kSampleWarps + 31) / 32 * 32;
  const int begin = min(vocab, warp * span);
  const int end = min(vocab, begin + span);
  unsigned long long local = 0;
  for (int i = begin + lane; i < end; i += 32) local += weight(i);
  local = warp_sum_u64(local);
  if (lane == 0) sm.warp_u64[warp] = local;
  __syncthreads();
  if (tid == 0) {
    unsigned long long acc = 0;
    int found = -1;
    for (int w = 0; w < kSampleWarps; ++w) {
      if (acc + sm.warp_u64[w] >= target) {
        found = w;
        break;
      }
      acc += sm.warp_u64[w];
    }
    sm.found_warp = found;
    sm.found_base = acc;
    sm.result = -1;
  }
  __syncthreads();
  if (warp == sm.found_warp) {
    unsigned long long running = sm.found_base;
    for (int start = begin; start < end; start += 32) {
      const int i = start + lane;
      unsigned long long x = i < end ? weight(i) : 0ull;
CANOPY_UNROLL
      for (int offset = 1; offset < 32; offset <<= 1) {
        const unsigned long long y = __shfl_up_sync(kFullWarp, x, offset);
        if (lane >= offset) x += y;
      }
      const unsigned hit = __ballot_sync(kFullWarp, running + x >= target);
      if (hit != 0u) {  // warp-uniform
        if (lane == 0) sm.result = start + __ffs(static_cast<int>(hit)) - 1;
        break;
      }
      running += __shfl_sync(kFullWarp, x, 31);
    }
  }
  __syncthreads();
  const int result = sm.result;
  __syncthreads();  // sm.result may be rewritten by the next call
  return result;
}

// MSB-first radix select over the keys of `row`: the largest key tau such that the weight of the
// elements with key >= tau reaches target; `above` gets the weight of the elements with key > tau.
// weight(i, key) must be 0 outside the set being selected from.
template <class Weight>
__device__ uint32_t radix_select(const float* row, int vocab, unsigned long long target, const Weight& weight,
                                 unsigned long long* above_out, SampleSmem& sm) {
  const int tid = static_cast<int>(threadIdx.x);
  uint32_t prefix = 0u;
  uint32_t mask = 0u;
  unsigned long long above = 0ull;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = tid; b < 256; b += kSampleThreads) sm.hist[b] = 0ull;
    __syncthreads();
    // A warp takes 32 consecutive ids at a time and adds one sum per distinct digit among them:
    // 64-bit shared atomics are compare-and-swap loops, and logits cluster in few digits.
    const int lane = tid & 31;
    for (int base = (tid >> 5) * 32; base < vocab; base += kSampleThreads) {  // warp-uniform bounds
      const int i = base + lane;
      uint32_t digit = 0u;
      unsigned long long w = 0ull;
      if (i < vocab) {
        const uint32_t key = logit_key(row[i]);
        if ((key & mask) == prefix) {
          w = weight(i, key);
          digit = (key >> shift) & 0xffu;
        }
      }
      unsigned todo = __ballot_sync(kFullWarp, w != 0ull);
      while (todo != 0u) {
        const int leader = __ffs(static_cast<int>(todo)) - 1;
        const uint32_t d = __shfl_sync(kFullWarp, digit, leader);
        const bool mine = w != 0ull && digit == d;
        const unsigned long long part = warp_sum_u64(mine ? w : 0ull);
        if (lane == leader) atomicAdd(&sm.hist[d], part);
        todo &= ~__ballot_sync(kFullWarp, mine);
      }
    }
    __syncthreads();
    if (tid == 0) {
      uint32_t digit = 0u;
      for (int b = 255; b >= 0; --b) {
        if (above + sm.hist[b] >= target) {
          digit = static_cast<uint32_t>(b);
          break;
        }
        above += sm.hist[b];
      }
      sm.digit = digit;
      sm.above = above;
    }
    __syncthreads();
    prefix |= sm.digit << shift;
    mask |= 0xffu << shift;
    above = sm.above;
    __syncthreads();  // every thread has read sm.digit / sm.above before thread 0 rewrites them
  }
  *above_out = above;
  return prefix;
}

__global__ void __launch_bounds__(kSampleThreads) sample_kernel(const __grid_constant__ SampleParams p) {
  SampleSmem& sm = *reinterpret_cast<SampleSmem*>(model_kernel_smem());
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int s = static_cast<int>(blockIdx.x);
  const int V = p.vocab;
  const SamplerRow cfg = p.rows[s];
  const int32_t row_index = p.logits_row[s];
  if (row_index < 0 || row_index >= p.num_rows) {  // the host checks; never read out of bounds
    if (tid == 0) p.out[s] = SampleResult{-1, sample_neg_inf()};
    return;
  }
  const float* row = p.logits + static_cast<int64_t>(row_index) * V;
  const float neg_inf = sample_neg_inf();

  // ---- 1. max, its lowest id, sum of exp(x - max)
  MaxSum acc{neg_inf, 0.0f, -1};
  for (int i = tid; i < V; i += kSampleThreads) {
    const float x = logit_value(row[i]);
    if (acc.a < 0) {
      acc = MaxSum{x, x == neg_inf ? 0.0f : 1.0f, i};
    } else if (x > acc.m) {
      acc.s = (acc.m == neg_inf ? 0.0f : acc.s * expf(acc.m - x)) + 1.0f;
      acc.m = x;
      acc.a = i;
    } else if (x != neg_inf) {
      acc.s += expf(x - acc.m);
    }
  }
  acc = warp_max_sum(acc);
  if (lane == 0) {
    sm.warp_m[warp] = acc.m;
    sm.warp_s[warp] = acc.s;
    sm.warp_a[warp] = acc.a;
  }
  __syncthreads();
  if (warp == 0) {
    MaxSum v = lane < kSampleWarps ? MaxSum{sm.warp_m[lane], sm.warp_s[lane], sm.warp_a[lane]} : MaxSum{neg_inf, 0.0f, -1};
    v = warp_max_sum(v);
    if (lane == 0) {
      sm.final_m = v.m;
      sm.final_s = v.s;
      sm.final_a = v.a;
    }
  }
  __syncthreads();
  const float max_logit = sm.final_m;
  const int32_t argmax = sm.final_a;
  const float log_sum = max_logit == neg_inf ? 0.0f : logf(sm.final_s);
  auto logprob_of = [&](int token) {
    if (max_logit == neg_inf) return neg_inf;
    return (logit_value(row[token]) - max_logit) - log_sum;
  };
  if (cfg.temperature <= 0.0f || cfg.top_k == 1 || max_logit == neg_inf || V == 1) {
    if (tid == 0) p.out[s] = SampleResult{argmax, logprob_of(argmax)};
    return;
  }

  // ---- fixed-point masses: weight in [0, 1] (1 for the max) times 2^mass_shift
  const float inv_t = 1.0f / cfg.temperature;
  const float scale = ldexpf(1.0f, p.mass_shift);
  auto mass = [&](float x) -> unsigned long long {
    return static_cast<unsigned long long>(expf((x - max_logit) * inv_t) * scale);
  };
  uint32_t thr = 0u;  // every key is > 0: everything is kept
  int32_t cut = V - 1;
  auto kept = [&](int i, uint32_t key) { return key > thr || (key == thr && i <= cut); };

  // ---- 2. top-k by count
  if (cfg.top_k > 0 && cfg.top_k < V) {
    unsigned long long above = 0;
    const uint32_t tau = radix_select(
        row, V, static_cast<unsigned long long>(cfg.top_k), [](int, uint32_t) { return 1ull; }, &above, sm);
    const unsigned long long need = static_cast<unsigned long long>(cfg.top_k) - above;  // >= 1 ties to take
    const int c = find_crossing(
        V, need, [&](int i) { return logit_key(row[i]) == tau ? 1ull : 0ull; }, sm);
    if (c >= 0) {
      thr = tau;
      cut = c;
    }
  }

  // ---- 3. top-p by mass within the kept set
  if (cfg.top_p < 1.0f) {
    unsigned long long local = 0;
    for (int i = tid; i < V; i += kSampleThreads) {
      const float x = row[i];
      if (kept(i, logit_key(x))) local += mass(logit_value(x));
    }
    const unsigned long long total = block_sum_u64<kSampleThreads>(local, sm.warp_u64);
    unsigned long long target = static_cast<unsigned long long>(ceil(static_cast<double>(cfg.top_p) * static_cast<double>(total)));
    target = target < 1ull ? 1ull : (target > total ? total : target);
    if (total > 0ull) {
      unsigned long long above = 0;
      const uint32_t tau = radix_select(
          row, V, target,
          [&](int i, uint32_t key) { return kept(i, key) ? mass(logit_value(row[i])) : 0ull; }, &above, sm);
      const unsigned long long need = target - above;
      const int c = find_crossing(
          V, need,
          [&](int i) {
            const uint32_t key = logit_key(row[i]);
            return key == tau && kept(i, key) ? mass(logit_value(row[i])) : 0ull;
          },
          sm);
      if (c >= 0) {
        thr = tau;
        cut = c;
      }
    }
  }

  // ---- 4. the draw
  unsigned long long local = 0;
  for (int i = tid; i < V; i += kSampleThreads) {
    const float x = row[i];
    if (kept(i, logit_key(x))) local += mass(logit_value(x));
  }
  const unsigned long long total = block_sum_u64<kSampleThreads>(local, sm.warp_u64);
  int token = -1;
  if (total > 0ull) {
    const double u = counter_uniform(cfg.seed, cfg.counter);
    unsigned long long threshold = static_cast<unsigned long long>(u * static_cast<double>(total));
    if (threshold >= total) threshold = total - 1ull;
    token = find_crossing(
        V, threshold + 1ull,
        [&](int i) {
          const float x = row[i];
          return kept(i, logit_key(x)) ? mass(logit_value(x)) : 0ull;
        },
        sm);
  }
  if (token < 0) token = argmax;  // cannot happen (the max is always kept, with mass 2^mass_shift)
  if (tid == 0) p.out[s] = SampleResult{token, logprob_of(token)};
}

}  // namespace canopy::kernels
