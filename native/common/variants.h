// The one dispatcher every kernel family uses (dwpw, conv2d, the DAC
// decomposition kernels): which variants this build compiled and this CPU
// runs, picked by name or best-by-default. Built without ISA flags.
#pragma once
#include <string>

#include "cpu_features.h"
#include "status.h"

namespace dac {

// A family's variant tables (each with a `name`), "ref" first and the best
// last. A family whose reference is a separate code path (not a table) has a
// null "ref" table.
template <class Table>
struct Variants {
  static constexpr int kMax = 6;
  const char* names[kMax] = {};
  const Table* tables[kMax] = {};
  int count = 0;
  std::string joined;  // "ref,avx2,avx512"

  const char* best() const { return names[count - 1]; }

  // The index of `variant` (null: the best), or an error naming the family
  // and what this build and CPU have.
  Status find(const char* family, const char* variant, int* index) const {
    *index = count - 1;
    if (!variant) return Status::Ok();
    for (int i = 0; i < count; ++i)
      if (std::string(names[i]) == variant) return *index = i, Status::Ok();
    return Status::Error(std::string(family) + ": variant '" + variant +
                         "' is not available in this build on this CPU (available: " + joined + ")");
  }
};

// The tables a build compiled, each null where it did not; kept in the order
// of preference, so the last one the CPU runs is the best.
template <class Table>
struct VariantTables {
  const Table* ref = nullptr;
  const Table* sse41 = nullptr;
  const Table* avx2 = nullptr;
  const Table* avx512 = nullptr;
  const Table* neon = nullptr;
  const Table* wasm_simd = nullptr;
};

template <class Table>
Variants<Table> detect_variants(const VariantTables<Table>& t) {
  Variants<Table> v;
  const CpuFeatures& f = cpu_features();
  auto add = [&v](const char* name, const Table* table) {
    v.names[v.count] = name;
    v.tables[v.count] = table;
    if (v.count) v.joined += ',';
    v.joined += name;
    ++v.count;
  };
  add("ref", t.ref);
  if (t.sse41 && f.sse41) add(t.sse41->name, t.sse41);
  if (t.avx2 && f.avx2_fma) add(t.avx2->name, t.avx2);
  if (t.avx512 && f.avx512) add(t.avx512->name, t.avx512);
  if (t.neon && f.neon) add(t.neon->name, t.neon);
  // WASM SIMD is a property of the module (an engine without it rejects the
  // whole module), so having compiled it in is enough.
  if (t.wasm_simd) add(t.wasm_simd->name, t.wasm_simd);
  return v;
}

// A variant table where this build compiled that ISA, else null.
#if defined(DAC_HAVE_X86_VARIANTS)
#define DAC_IF_X86(table) (table)
#else
#define DAC_IF_X86(table) nullptr
#endif
#if defined(DAC_HAVE_NEON_VARIANTS)
#define DAC_IF_NEON(table) (table)
#else
#define DAC_IF_NEON(table) nullptr
#endif
#if defined(__wasm_simd128__)
#define DAC_IF_WASM_SIMD(table) (table)
#else
#define DAC_IF_WASM_SIMD(table) nullptr
#endif

}  // namespace dac
