#include "kernel_emulator.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <stdexcept>
#include <vector>

// A minimal x86-64 System V context switch (callee-saved registers, MXCSR and the x87 control
// word): glibc's swapcontext makes two system calls per switch, which dominates the emulator.
extern "C" void canopy_emu_switch(void** save_sp, void* load_sp);
asm(R"(
  .text
  .globl canopy_emu_switch
  .type canopy_emu_switch, @function
canopy_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size canopy_emu_switch, .-canopy_emu_switch
  .section .note.GNU-stack,"",@progbits
  .text
)");

namespace canopy::emu {
namespace {

constexpr size_t kStackBytes = 256 * 1024;

struct Copy {
  uint32_t smem_offset;
  const void* src;
  bool valid;
};

struct Cta;

struct Fiber {
  void* sp = nullptr;  // saved stack pointer while switched out
  std::unique_ptr<char[]> stack;
  // While blocked: the fiber waits until *wait_on != wait_value (skipped by the scheduler).
  const uint64_t* wait_on = nullptr;
  uint64_t wait_value = 0;
  Cta* cta = nullptr;
  unsigned tid = 0;
  bool done = true;
  std::vector<Copy> open_group;
  std::deque<std::vector<Copy>> groups;
  void* slot = nullptr;
  // mbarriers whose phase this thread has observed complete since its last fence.proxy.async: the
  // cp.async data landed through them becomes fenced for it at the fence.
  std::vector<uint32_t> acquired;
};

struct Warp {
  int arrived = 0;
  uint64_t generation = 0;
  uint32_t in[32][16];
  uint32_t out[32][16];
};

struct Barrier {
  int count = 0;
  uint64_t generation = 0;
};

struct MBar {
  uint32_t expected = 0;
  uint32_t pending = 0;
  uint32_t phase = 0;  // parity of the current (incomplete) phase
  uint64_t generation = 0;
  // Copies of cp.async.mbarrier.arrive.noinc arrivals of the current phase: they land when the
  // phase completes (as late as the GPU may land them).
  std::vector<Copy> attached;
};

struct Group {
  int arrived = 0;
  uint64_t generation = 0;
};

struct Cta {
  unsigned block = 0;
  bool active = false;
  int live = 0;
  int barrier_count = 0;
  uint64_t barrier_generation = 0;
  std::vector<unsigned char> smem_storage;
  unsigned char* smem = nullptr;
  std::vector<Warp> warps;
  std::vector<Fiber> fibers;
  Barrier named[16];
  std::map<uint32_t, MBar> mbars;
  // per 16-byte chunk: 1 + thread that wrote it through cp.async (waited for by that thread), or
  // kLandedViaMbar | mbarrier offset / 8 (landed through a noinc arrival); 0 if fenced
  std::vector<uint16_t> unfenced;
  std::vector<uint16_t> async_reads;  // per 16-byte chunk: in-flight async-proxy reads
  std::vector<uint16_t> copies_in_flight;  // per 16-byte chunk: issued cp.async not yet landed
  std::vector<Group> warpgroups;
};

struct Machine {
  void* scheduler_sp = nullptr;
  Fiber* current = nullptr;
  const std::function<void()>* body = nullptr;
  size_t smem_bytes = 0;
  int block_threads = 0;
  int grid = 0;
};

Machine* g_machine = nullptr;

[[noreturn]] void fiber_trampoline() {
  Fiber* f = g_machine->current;
  (*g_machine->body)();
  if (!f->open_group.empty()) async_commit();
  async_wait(0);  // drain, like kernel exit
  f->done = true;
  --f->cta->live;
  void* dead = nullptr;
  canopy_emu_switch(&dead, g_machine->scheduler_sp);
  std::abort();  // never resumed
}

// A fresh stack whose first switch "returns" into fiber_trampoline (see canopy_emu_switch).
void* fresh_stack(char* stack, size_t bytes) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + bytes) & ~uintptr_t{15};
  auto* w = reinterpret_cast<uint64_t*>(top);
  w[-1] = 0;                                                  // fake return address (alignment)
  w[-2] = reinterpret_cast<uint64_t>(&fiber_trampoline);      // ret target
  for (int i = 3; i <= 8; ++i) w[-i] = 0;                     // rbp rbx r12 r13 r14 r15
  w[-9] = 0x1F80ull | (0x037Full << 32);                      // MXCSR, x87 control word
  return &w[-9];
}

void start_cta(Cta& c, unsigned block) {
  c.block = block;
  c.active = true;
  c.live = g_machine->block_threads;
  c.barrier_count = 0;
  std::memset(c.smem, 0xA5, g_machine->smem_bytes);  // garbage: unwritten shared memory shows
  for (auto& w : c.warps) {
    w.arrived = 0;
  }
  for (auto& b : c.named) b.count = 0;
  c.mbars.clear();
  std::fill(c.unfenced.begin(), c.unfenced.end(), uint16_t{0});
  std::fill(c.async_reads.begin(), c.async_reads.end(), uint16_t{0});
  std::fill(c.copies_in_flight.begin(), c.copies_in_flight.end(), uint16_t{0});
  for (auto& g : c.warpgroups) g.arrived = 0;
  for (int t = 0; t < g_machine->block_threads; ++t) {
    Fiber& f = c.fibers[static_cast<size_t>(t)];
    f.cta = &c;
    f.tid = static_cast<unsigned>(t);
    f.done = false;
    f.open_group.clear();
    f.groups.clear();
    f.wait_on = nullptr;
    f.slot = nullptr;
    f.sp = fresh_stack(f.stack.get(), kStackBytes);
  }
}

Fiber& me() {
  if (g_machine == nullptr || g_machine->current == nullptr) {
    std::fprintf(stderr, "kernel emulator: CUDA primitive called outside an emulated launch\n");
    std::abort();
  }
  return *g_machine->current;
}

}  // namespace

void launch(int grid, int block, size_t smem_bytes, int concurrent, const std::function<void()>& body) {
  if (g_machine != nullptr) throw std::logic_error("kernel emulator: nested launch");
  if (block <= 0 || block % 32 != 0) throw std::invalid_argument("kernel emulator: block must be a multiple of 32");
  Machine m;
  m.body = &body;
  m.smem_bytes = smem_bytes;
  m.block_threads = block;
  m.grid = grid;
  g_machine = &m;
  std::vector<Cta> ctas(static_cast<size_t>(std::max(1, concurrent)));
  for (auto& c : ctas) {
    c.smem_storage.resize(smem_bytes + 1024);
    const uintptr_t p = reinterpret_cast<uintptr_t>(c.smem_storage.data());
    c.smem = reinterpret_cast<unsigned char*>((p + 1023) & ~uintptr_t{1023});
    c.warps.resize(static_cast<size_t>(block / 32));
    c.fibers.resize(static_cast<size_t>(block));
    c.unfenced.assign(smem_bytes / 16 + 1, 0);
    c.async_reads.assign(smem_bytes / 16 + 1, 0);
    c.copies_in_flight.assign(smem_bytes / 16 + 1, 0);
    c.warpgroups.resize(static_cast<size_t>((block + 127) / 128));
    for (auto& f : c.fibers) f.stack.reset(new char[kStackBytes]);
  }
  unsigned next_block = 0;
  bool any = true;
  while (any) {
    any = false;
    bool progress = false;
    for (auto& c : ctas) {
      if (!c.active && next_block < static_cast<unsigned>(grid)) {
        start_cta(c, next_block++);
        progress = true;
      }
      if (!c.active) continue;
      any = true;
      for (auto& f : c.fibers) {
        if (f.done) continue;
        if (f.wait_on != nullptr && *f.wait_on == f.wait_value) continue;  // still blocked
        f.wait_on = nullptr;
        m.current = &f;
        canopy_emu_switch(&m.scheduler_sp, f.sp);
        m.current = nullptr;
        progress = true;
      }
      if (c.live == 0) c.active = false;
    }
    if (!any && next_block < static_cast<unsigned>(grid)) any = true;
    if (any && !progress) {  // every live thread waits for something no one will do
      std::fprintf(stderr, "kernel emulator: deadlock (every live thread is blocked)\n");
      std::abort();
    }
  }
  g_machine = nullptr;
}

Dim3 thread_idx() { return Dim3{me().tid, 0, 0}; }
Dim3 block_idx() { return Dim3{me().cta->block, 0, 0}; }
Dim3 grid_dim() { return Dim3{static_cast<unsigned>(g_machine->grid), 1, 1}; }
unsigned char* smem_base() { return me().cta->smem; }
size_t smem_size() { return g_machine->smem_bytes; }

void yield() {
  Fiber& f = me();
  canopy_emu_switch(&f.sp, g_machine->scheduler_sp);
}

namespace {
// Blocks the current fiber until *generation changes.
void wait_for_change(const uint64_t* generation, uint64_t value) {
  Fiber& f = me();
  f.wait_on = generation;
  f.wait_value = value;
  while (*generation == value) canopy_emu_switch(&f.sp, g_machine->scheduler_sp);
  f.wait_on = nullptr;
}
}  // namespace

void syncthreads() {
  Cta& c = *me().cta;
  const uint64_t gen = c.barrier_generation;
  if (++c.barrier_count == g_machine->block_threads) {
    c.barrier_count = 0;
    ++c.barrier_generation;
    return;
  }
  wait_for_change(&c.barrier_generation, gen);
}

void warp_collective(const uint32_t* in, int n_in, uint32_t* out, int n_out, CollectiveFn compute) {
  Fiber& f = me();
  Warp& w = f.cta->warps[f.tid / 32];
  const unsigned lane = f.tid % 32;
  for (int i = 0; i < n_in; ++i) w.in[lane][i] = in[i];
  const uint64_t gen = w.generation;
  if (++w.arrived == 32) {
    if (compute != nullptr) compute(w.in, w.out);
    w.arrived = 0;
    ++w.generation;
  } else {
    wait_for_change(&w.generation, gen);
  }
  for (int i = 0; i < n_out; ++i) out[i] = w.out[lane][i];
}

void syncwarp() { warp_collective(nullptr, 0, nullptr, 0, nullptr); }

void async_copy_16(uint32_t smem_offset, const void* src, bool valid) {
  Fiber& f = me();
  if (static_cast<size_t>(smem_offset) + 16 > g_machine->smem_bytes || smem_offset % 16 != 0) {
    std::fprintf(stderr, "kernel emulator: cp.async to shared offset %u out of range or misaligned\n", smem_offset);
    std::abort();
  }
  if (f.cta->async_reads[smem_offset / 16] != 0) {
    std::fprintf(stderr,
                 "kernel emulator: cp.async into shared offset %u, which an in-flight wgmma still reads (thread %u)\n",
                 smem_offset, f.tid);
    std::abort();
  }
  f.open_group.push_back({smem_offset, src, valid});
  ++f.cta->copies_in_flight[smem_offset / 16];
}

void async_commit() {
  Fiber& f = me();
  f.groups.push_back(std::move(f.open_group));
  f.open_group.clear();
}

void async_wait(int max_pending_groups) {
  Fiber& f = me();
  // Only committed groups are waited for (an uncommitted copy stays in flight, as on the GPU).
  while (static_cast<int>(f.groups.size()) > max_pending_groups) {
    for (const Copy& c : f.groups.front()) {
      unsigned char* dst = f.cta->smem + c.smem_offset;
      if (c.valid) {
        std::memcpy(dst, c.src, 16);
      } else {
        std::memset(dst, 0, 16);
      }
      f.cta->unfenced[c.smem_offset / 16] = static_cast<uint16_t>(f.tid + 1);
      --f.cta->copies_in_flight[c.smem_offset / 16];
    }
    f.groups.pop_front();
  }
}

// ---- Hopper primitives

void named_barrier(int id, int threads) {
  if (id < 1 || id > 15 || threads <= 0 || threads % 32 != 0 || threads > g_machine->block_threads) {
    std::fprintf(stderr, "kernel emulator: bar.sync %d, %d: bad barrier\n", id, threads);
    std::abort();
  }
  Barrier& b = me().cta->named[id];
  const uint64_t gen = b.generation;
  if (++b.count == threads) {
    b.count = 0;
    ++b.generation;
    return;
  }
  wait_for_change(&b.generation, gen);
}

void named_barrier_arrive(int id, int threads) {
  if (id < 1 || id > 15 || threads <= 0 || threads % 32 != 0 || threads > g_machine->block_threads) {
    std::fprintf(stderr, "kernel emulator: bar.arrive %d, %d: bad barrier\n", id, threads);
    std::abort();
  }
  Barrier& b = me().cta->named[id];
  if (++b.count == threads) {
    b.count = 0;
    ++b.generation;
  }
}

namespace {
constexpr uint16_t kLandedViaMbar = 0x8000;  // unfenced tag of copies landed through an mbarrier

MBar& mbar_at(uint32_t off) {
  Cta& c = *me().cta;
  auto it = c.mbars.find(off);
  if (it == c.mbars.end() || off % 8 != 0) {
    std::fprintf(stderr, "kernel emulator: mbarrier at shared offset %u used before mbarrier.init\n", off);
    std::abort();
  }
  return it->second;
}
}  // namespace

void mbar_init(uint32_t off, uint32_t count) {
  if (count == 0 || off % 8 != 0 || off + 8 > g_machine->smem_bytes) {
    std::fprintf(stderr, "kernel emulator: mbarrier.init at %u with count %u\n", off, count);
    std::abort();
  }
  MBar& b = me().cta->mbars[off];
  b.expected = count;
  b.pending = count;
  b.phase = 0;
  ++b.generation;
}

void mbar_arrive(uint32_t off) {
  MBar& b = mbar_at(off);
  if (--b.pending == 0) {
    b.pending = b.expected;
    b.phase ^= 1u;
    ++b.generation;
  }
  yield();  // let waiters and other arrivers interleave
}

namespace {
void note_acquired(uint32_t off) {
  std::vector<uint32_t>& a = me().acquired;
  if (std::find(a.begin(), a.end(), off) == a.end()) a.push_back(off);
}
}  // namespace

void async_mbar_arrive_noinc(uint32_t off) {
  Fiber& f = me();
  Cta& c = *f.cta;
  MBar& b = mbar_at(off);
  // Every cp.async this thread issued so far (committed or not) now belongs to the arrival; the
  // groups stay (empty) so that later wait_group counts are unchanged.
  for (auto& g : f.groups) {
    b.attached.insert(b.attached.end(), g.begin(), g.end());
    g.clear();
  }
  b.attached.insert(b.attached.end(), f.open_group.begin(), f.open_group.end());
  f.open_group.clear();
  if (--b.pending == 0) {
    for (const Copy& cp : b.attached) {
      unsigned char* dst = c.smem + cp.smem_offset;
      if (cp.valid) {
        std::memcpy(dst, cp.src, 16);
      } else {
        std::memset(dst, 0, 16);
      }
      c.unfenced[cp.smem_offset / 16] = static_cast<uint16_t>(kLandedViaMbar | (off / 8));
      --c.copies_in_flight[cp.smem_offset / 16];
    }
    b.attached.clear();
    b.pending = b.expected;
    b.phase ^= 1u;
    ++b.generation;
  }
  yield();
}

bool mbar_test(uint32_t off, uint32_t parity) {
  const bool done = mbar_at(off).phase != (parity & 1u);
  if (done) note_acquired(off);
  return done;
}

void mbar_wait(uint32_t off, uint32_t parity) {
  MBar& b = mbar_at(off);
  while (b.phase == (parity & 1u)) wait_for_change(&b.generation, b.generation);
  note_acquired(off);
}

void proxy_fence() {
  Fiber& f = me();
  for (auto& w : f.cta->unfenced) {
    if (w == f.tid + 1) w = 0;
    if ((w & kLandedViaMbar) != 0) {
      for (uint32_t bar : f.acquired)
        if (w == (kLandedViaMbar | (bar / 8))) w = 0;
    }
  }
  f.acquired.clear();
}

void check_async_read(uint32_t off, uint32_t bytes) {
  Cta& c = *me().cta;
  for (uint32_t o = off / 16; o < (off + bytes + 15) / 16 && o < c.unfenced.size(); ++o) {
    if ((c.unfenced[o] & kLandedViaMbar) != 0) {
      std::fprintf(stderr,
                   "kernel emulator: async-proxy read of shared offset %u, landed through the mbarrier at %u, "
                   "without fence.proxy.async after waiting for it\n",
                   o * 16, (c.unfenced[o] & ~kLandedViaMbar) * 8u);
      std::abort();
    }
    if (c.unfenced[o] != 0) {
      std::fprintf(stderr,
                   "kernel emulator: async-proxy read of shared offset %u, written through the generic proxy by "
                   "thread %d without fence.proxy.async\n",
                   o * 16, c.unfenced[o] - 1);
      std::abort();
    }
  }
}

void check_generic_read(uint32_t off, uint32_t bytes) {
  Cta& c = *me().cta;
  for (uint32_t o = off / 16; o < (off + bytes + 15) / 16 && o < c.copies_in_flight.size(); ++o) {
    if (c.copies_in_flight[o] != 0) {
      std::fprintf(stderr, "kernel emulator: read of shared offset %u while a cp.async into it is in flight\n", o * 16);
      std::abort();
    }
  }
}

void async_reads_add(uint32_t off, uint32_t bytes, int delta) {
  Cta& c = *me().cta;
  for (uint32_t o = off / 16; o < (off + bytes + 15) / 16 && o < c.async_reads.size(); ++o)
    c.async_reads[o] = static_cast<uint16_t>(c.async_reads[o] + delta);
}

void*& thread_slot() { return me().slot; }

void warpgroup_collective(void (*fn)(void* const* slots, void* ctx), void* ctx) {
  Fiber& f = me();
  Cta& c = *f.cta;
  const unsigned wg = f.tid / 128;
  if ((wg + 1) * 128 > static_cast<unsigned>(g_machine->block_threads)) {
    std::fprintf(stderr, "kernel emulator: warpgroup collective in a partial warpgroup\n");
    std::abort();
  }
  Group& g = c.warpgroups[wg];
  const uint64_t gen = g.generation;
  if (++g.arrived == 128) {
    void* slots[128];
    for (int t = 0; t < 128; ++t) slots[t] = c.fibers[wg * 128 + static_cast<unsigned>(t)].slot;
    fn(slots, ctx);
    g.arrived = 0;
    ++g.generation;
    return;
  }
  wait_for_change(&g.generation, gen);
}

}  // namespace canopy::emu
