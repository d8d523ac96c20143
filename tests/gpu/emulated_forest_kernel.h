// The forest attention kernels' own source (kernels/forest_attention.cuh) compiled for the host
// and run on the SIMT emulator (kernel_emulator.h). Parameters are the real kernels' structs
// (canopy::kernels::ForestAttentionParams / MergePartialsParams) with host pointers, passed as
// void* to keep the emulated instantiations in a namespace of their own.
#pragma once

namespace canopy::testing {

// Runs the attention kernel over every unit, `concurrent_ctas` CTAs at a time.
void emulate_forest_attention(const void* forest_attention_params, int head_dim, int concurrent_ctas);
// The same for the v2 (sm_90a) kernel: wgmma, mbarriers and proxies emulated.
void emulate_forest_attention_sm90(const void* forest_attention_params, int head_dim, int concurrent_ctas);
void emulate_merge_partials(const void* merge_partials_params, int head_dim);

}  // namespace canopy::testing
