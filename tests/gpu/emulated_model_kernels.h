// The model kernels' own source (embedding, add + RMSNorm, rope, KV write and copy, SwiGLU, random
// fill, sampling) run on the host SIMT emulator (kernel_emulator.h), so that their indexing,
// reductions and selection logic are tested on machines without a GPU. Each call launches the
// kernel with the same grid as its real launcher (kernels/model_kernels.cu, sampling.cu); pointers
// are host pointers.
#pragma once

#include "model_kernels.h"
#include "sampling.h"

namespace canopy::testing {

void emulate_embed(const kernels::EmbedParams& p);
void emulate_rms_norm(const kernels::RmsNormParams& p);
void emulate_rope(const kernels::RopeParams& p);
void emulate_kv_write(const kernels::KvWriteParams& p);
void emulate_swiglu(const kernels::SwigluParams& p);
void emulate_copy_blocks(const kernels::CopyBlocksParams& p);
void emulate_random_fill(const kernels::RandomFillParams& p);
void emulate_sample(const kernels::SampleParams& p);

}  // namespace canopy::testing
