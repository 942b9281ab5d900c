// Errors cross the core's boundary as values: the addon turns them into JS
// exceptions and the WASM glue into thrown Errors, so no C++ exception ever
// has to unwind through N-API or Emscripten.
#pragma once
#include <string>
#include <utility>

namespace dac {

struct Status {
  bool ok = true;
  std::string message;

  static Status Ok() { return {}; }
  static Status Error(std::string msg) { return {false, std::move(msg)}; }
};

}  // namespace dac
