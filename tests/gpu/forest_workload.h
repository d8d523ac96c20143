// Synthetic prefix forests for the GPU attention tests and the attention benchmark: a forest of
// nodes (token counts), its placement in a paged KV cache, the decode-step attention plan that
// reads every node once (one item per node), and the "every sequence reads its own copy" plan.
// Also host references: bf16 data helpers, a plain-bf16 emulation of the kernels' rounding, and
// error statistics. No GoogleTest and no CUDA here, so the benchmark can link it too.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "attention/plan.h"
#include "kv/kv_layout.h"

namespace canopy::testing {

struct ForestNode {
  int parent = -1;     // -1 for a root; parents come before their children
  int32_t tokens = 0;  // KV tokens of the node
};

// Leaves are the sequences; each decodes one token (its query is the path's last position).
struct Forest {
  std::vector<ForestNode> nodes;
};

// One root of `prefix` tokens and one leaf per entry of `unique`.
Forest two_level_forest(int32_t prefix, const std::vector<int32_t>& unique);
// root -> docs -> questions: one root, `docs` children of doc_tokens, each with `questions`
// leaves of question_tokens.
Forest three_level_forest(int32_t root_tokens, int docs, int32_t doc_tokens, int questions, int32_t question_tokens);

// A forest placed in a paged cache, with its decode plan.
struct ForestDecode {
  AttentionPlan plan;  // one item per node (q_count = sequences below it), sequences in DFS order
  KvLayout layout;
  std::vector<std::vector<int32_t>> node_blocks;  // the blocks of each node's own tokens
  std::vector<int32_t> node_tokens;               // KV tokens of each node
  std::vector<int32_t> node_pos0;                 // absolute position of each node's first token
  std::vector<std::vector<int>> seq_path;         // nodes of sequence t, root first
  std::vector<int32_t> seq_len;                   // KV tokens of sequence t (its whole path)
};

// shuffle_seed != 0 permutes the block ids (a fragmented cache); 0 keeps them in order.
ForestDecode build_forest_decode(const Forest& forest, int block_size, int num_kv_heads, int head_dim,
                                 uint64_t shuffle_seed);

// The same sequences, each reading a private copy of its whole path: blocks
// [first_block[t], first_block[t] + ceil(len / block_size)) hold sequence t, and the plan has one
// item per sequence (decode: q_count 1).
struct FlatDecode {
  AttentionPlan plan;
  KvLayout layout;
  std::vector<int32_t> first_block;
};
FlatDecode build_flat_decode(const ForestDecode& forest, int block_size);
// Copies a forest cache's token vectors into the flat layout (host, bf16 bits).
void copy_forest_to_flat(const ForestDecode& forest, const FlatDecode& flat, const std::vector<uint16_t>& src,
                         std::vector<uint16_t>& dst);

// ---- data helpers
std::vector<uint16_t> random_bf16(std::mt19937_64& rng, size_t n, float lo, float hi);
std::vector<float> bf16_to_f32(const std::vector<uint16_t>& v);

// ---- references
// A plain bf16 implementation on the host: scores in f32, P rounded to bf16 for P V (the sum of P
// kept in f32), merge in f32, output rounded to bf16 when round_output. Its error against the f32
// reference is the yardstick of the kernels' error.
void emulate_bf16_plan(const AttentionPlan& plan, const AttentionShape& shape, const KvLayout& layout, const float* q,
                       const float* k_cache, const float* v_cache, std::vector<float>& partial_o,
                       std::vector<float>& partial_lse, std::vector<float>& out, std::vector<float>& lse);

struct ErrorStats {
  double max_abs = 0.0;
  double max_ref = 0.0;
  double sum_sq_err = 0.0;
  double sum_sq_ref = 0.0;
  int64_t count = 0;
  int64_t mismatched_inf = 0;  // one side -inf (or +inf), the other not
  int64_t nonfinite = 0;       // NaN on the tested side, or an infinity where none is allowed
  double rel_l2() const;
  std::string str() const;
};
// Compares got with ref element by element; infinities must match exactly (LSE of empty parts).
ErrorStats compare(const float* got, const float* ref, size_t n);

// Bytes and FLOPs of one decode step over a forest, for the floor (bf16 KV read once per node and
// KV head, queries read and outputs written once; 4 * rows * keys * D FLOPs).
struct StepCost {
  double kv_bytes = 0.0;
  double q_out_bytes = 0.0;
  double flops = 0.0;
};
StepCost forest_step_cost(const ForestDecode& forest, int num_q_heads, int num_kv_heads, int head_dim);

}  // namespace canopy::testing
