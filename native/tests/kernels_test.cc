// Standalone tests of the fused depthwise+pointwise and dense conv kernels:
// every variant this build and CPU can run against the reference loops, on
// odd shapes, with outputs pre-filled with NaN so an unwritten element
// fails; the reference fused kernel against the reference dense conv of the
// composed weights; and bad arguments rejected with a Status. Also run under
// ASan/UBSan (scripts/test-native.sh sanitize) and qemu (scripts/test-neon.sh).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "../conv/conv.h"
#include "../dwpw/dwpw.h"
#include "harness.h"

namespace {

using dac_test::g_failed;
using dac_test::g_passed;
using dac_test::report;
using dac_test::Rng;

std::vector<std::string> split(const char* s) {
  std::vector<std::string> out;
  std::string cur;
  for (const char* p = s; *p; ++p) {
    if (*p == ',') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += *p;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

dac::Status dwpw_with(dac::DwPwParams p, const char* variant) {
  p.variant = variant;
  return dac::dwpw_forward(p);
}

dac::Status conv2d_with(dac::Conv2DParams p, const char* variant) {
  p.variant = variant;
  return dac::conv2d_forward(p);
}

struct Case {
  int batch, h, w, c, n, kh, kw, sh, sw, dh, dw;
  int pt, pl, pb, pr;
  int rank;
  bool bias;
  dac::Activation act;
  int threads;
};

int out_size(int in, int pa, int pb, int k, int s, int d) { return (in + pa + pb - d * (k - 1) - 1) / s + 1; }

// TF 'same' padding: total = max((ceil(in/s)-1)*s + (k-1)*d + 1 - in, 0), top half rounded down.
void same_pads(int in, int k, int s, int d, int* a, int* b) {
  const int out = (in + s - 1) / s;
  const int total = std::max((out - 1) * s + (k - 1) * d + 1 - in, 0);
  *a = total / 2;
  *b = total - *a;
}

dac::ConvGeometry geometry(const Case& k) {
  dac::ConvGeometry g;
  g.batch = k.batch;
  g.in_h = k.h;
  g.in_w = k.w;
  g.in_c = k.c;
  g.kh = k.kh;
  g.kw = k.kw;
  g.stride_h = k.sh;
  g.stride_w = k.sw;
  g.dilation_h = k.dh;
  g.dilation_w = k.dw;
  g.pad_top = k.pt;
  g.pad_left = k.pl;
  g.pad_bottom = k.pb;
  g.pad_right = k.pr;
  g.out_h = out_size(k.h, k.pt, k.pb, k.kh, k.sh, k.dh);
  g.out_w = out_size(k.w, k.pl, k.pr, k.kw, k.sw, k.dw);
  g.out_c = k.n;
  return g;
}

std::string describe(const Case& k) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "b%d %dx%dx%d->%d k%dx%d s%d,%d d%d,%d pad%d,%d,%d,%d r%d bias%d act%d t%d", k.batch,
                k.h, k.w, k.c, k.n, k.kh, k.kw, k.sh, k.sw, k.dh, k.dw, k.pt, k.pl, k.pb, k.pr, k.rank, k.bias ? 1 : 0,
                static_cast<int>(k.act), k.threads);
  return buf;
}

// Largest error relative to max(|ref_i|, mean |ref|); NaN counts as failure.
bool close(const std::vector<float>& got, const std::vector<float>& ref, double tol, std::string* why) {
  double mean = 0;
  for (float v : ref) mean += std::fabs(v);
  mean = ref.empty() ? 0 : mean / static_cast<double>(ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    const double scale = std::max<double>(std::max<double>(std::fabs(ref[i]), mean), 1e-20);
    const double err = std::fabs(static_cast<double>(got[i]) - ref[i]) / scale;
    if (!(err <= tol)) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "at %zu: got %.8g want %.8g (rel err %.3g)", i, got[i], ref[i], err);
      *why = buf;
      return false;
    }
  }
  return true;
}

struct DwPwData {
  dac::ConvGeometry g;
  std::vector<float> input, dw, pw, bias;
  dac::DwPwParams params(const Case& k, std::vector<float>& out) const {
    dac::DwPwParams p;
    p.g = g;
    p.rank = k.rank;
    p.input = input.data();
    p.input_length = static_cast<int64_t>(input.size());
    p.depthwise = dw.data();
    p.depthwise_length = static_cast<int64_t>(dw.size());
    p.pointwise = pw.data();
    p.pointwise_length = static_cast<int64_t>(pw.size());
    p.bias = k.bias ? bias.data() : nullptr;
    p.bias_length = k.bias ? static_cast<int64_t>(bias.size()) : 0;
    p.output = out.data();
    p.output_length = static_cast<int64_t>(out.size());
    p.activation = k.act;
    p.threads = k.threads;
    return p;
  }
};

DwPwData make_dwpw(const Case& k, uint64_t seed) {
  Rng rng(seed);
  DwPwData d;
  d.g = geometry(k);
  const int64_t T = static_cast<int64_t>(k.kh) * k.kw;
  d.input = rng.vec(static_cast<int64_t>(k.batch) * k.h * k.w * k.c);
  d.dw = rng.vec(static_cast<int64_t>(k.c) * k.rank * T);
  d.pw = rng.vec(static_cast<int64_t>(k.n) * k.c * k.rank);
  d.bias = rng.vec(k.n);
  return d;
}

int64_t out_len(const dac::ConvGeometry& g) { return static_cast<int64_t>(g.batch) * g.out_h * g.out_w * g.out_c; }

// Every dwpw variant vs "ref"; then "ref" vs the reference dense conv of the
// composed weights W[o][i][t] = sum_j pw[o][i*r+j] * dw[i*r+j][t].
void test_dwpw_case(const Case& k, uint64_t seed) {
  const DwPwData d = make_dwpw(k, seed);
  const std::string name = "dwpw " + describe(k);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> ref(static_cast<size_t>(out_len(d.g)), nan);
  dac::Status s = dwpw_with(d.params(k, ref), "ref");
  report(s.ok, name + " [ref]", s.message);
  if (!s.ok) return;
  for (const std::string& v : split(dac::dwpw_variants())) {
    if (v == "ref") continue;
    std::vector<float> out(ref.size(), nan);
    s = dwpw_with(d.params(k, out), v.c_str());
    std::string why = s.message;
    report(s.ok && close(out, ref, 1e-4, &why), name + " [" + v + "]", why);
  }
  // The default entry point runs the best variant.
  std::vector<float> best(ref.size(), nan);
  s = dac::dwpw_forward(d.params(k, best));
  std::string why = s.message;
  report(s.ok && close(best, ref, 1e-4, &why), name + " [best]", why);

  const int T = k.kh * k.kw;
  std::vector<float> composed(static_cast<size_t>(k.n) * k.c * T, 0.f);
  for (int o = 0; o < k.n; ++o)
    for (int i = 0; i < k.c; ++i)
      for (int j = 0; j < k.rank; ++j)
        for (int t = 0; t < T; ++t)
          composed[(static_cast<size_t>(o) * k.c + i) * T + t] +=
              d.pw[static_cast<size_t>(o) * k.c * k.rank + static_cast<size_t>(i) * k.rank + j] *
              d.dw[(static_cast<size_t>(i) * k.rank + j) * T + t];
  std::vector<float> dense(ref.size(), nan);
  dac::Conv2DParams cp;
  cp.g = d.g;
  cp.input = d.input.data();
  cp.input_length = static_cast<int64_t>(d.input.size());
  cp.weights = composed.data();
  cp.weights_length = static_cast<int64_t>(composed.size());
  cp.bias = k.bias ? d.bias.data() : nullptr;
  cp.bias_length = k.bias ? k.n : 0;
  cp.output = dense.data();
  cp.output_length = static_cast<int64_t>(dense.size());
  cp.activation = k.act;
  cp.threads = 1;
  s = conv2d_with(cp, "ref");
  why = s.message;
  report(s.ok && close(ref, dense, 1e-4, &why), name + " [ref vs composed dense]", why);
}

void test_conv_case(const Case& k, uint64_t seed) {
  Rng rng(seed);
  const dac::ConvGeometry g = geometry(k);
  const std::string name = "conv2d " + describe(k);
  const std::vector<float> input = rng.vec(static_cast<int64_t>(k.batch) * k.h * k.w * k.c);
  const std::vector<float> weights = rng.vec(static_cast<int64_t>(k.n) * k.c * k.kh * k.kw);
  const std::vector<float> bias = rng.vec(k.n);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto params = [&](std::vector<float>& out) {
    dac::Conv2DParams p;
    p.g = g;
    p.input = input.data();
    p.input_length = static_cast<int64_t>(input.size());
    p.weights = weights.data();
    p.weights_length = static_cast<int64_t>(weights.size());
    p.bias = k.bias ? bias.data() : nullptr;
    p.bias_length = k.bias ? k.n : 0;
    p.output = out.data();
    p.output_length = static_cast<int64_t>(out.size());
    p.activation = k.act;
    p.threads = k.threads;
    return p;
  };
  std::vector<float> ref(static_cast<size_t>(out_len(g)), nan);
  dac::Status s = conv2d_with(params(ref), "ref");
  report(s.ok, name + " [ref]", s.message);
  if (!s.ok) return;
  for (const std::string& v : split(dac::conv2d_variants())) {
    if (v == "ref") continue;
    std::vector<float> out(ref.size(), nan);
    s = conv2d_with(params(out), v.c_str());
    std::string why = s.message;
    report(s.ok && close(out, ref, 1e-4, &why), name + " [" + v + "]", why);
  }
}

// A hand-computed 1-channel case pins the reference itself down: 3x3 input
// 1..9, 3x3 'same' kernel of ones -> window sums.
void test_known_values() {
  const std::vector<float> input = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<float> ones(9, 1.f);
  const std::vector<float> pw = {2.f};
  const std::vector<float> bias = {-1.f};
  const std::vector<float> want = {12 * 2 - 1, 21 * 2 - 1, 16 * 2 - 1, 27 * 2 - 1, 45 * 2 - 1,
                                   33 * 2 - 1, 24 * 2 - 1, 39 * 2 - 1, 28 * 2 - 1};
  Case k{1, 3, 3, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, dac::Activation::None, 1};
  for (const std::string& v : split(dac::dwpw_variants())) {
    std::vector<float> out(9, std::numeric_limits<float>::quiet_NaN());
    dac::DwPwParams p;
    p.g = geometry(k);
    p.rank = 1;
    p.input = input.data();
    p.input_length = 9;
    p.depthwise = ones.data();
    p.depthwise_length = 9;
    p.pointwise = pw.data();
    p.pointwise_length = 1;
    p.bias = bias.data();
    p.bias_length = 1;
    p.output = out.data();
    p.output_length = 9;
    dac::Status s = dwpw_with(p, v.c_str());
    std::string why = s.message;
    report(s.ok && close(out, want, 1e-6, &why), "dwpw known values [" + v + "]", why);
  }
  for (const std::string& v : split(dac::conv2d_variants())) {
    std::vector<float> out(9, std::numeric_limits<float>::quiet_NaN());
    const std::vector<float> w(9, 2.f);
    dac::Conv2DParams p;
    p.g = geometry(k);
    p.input = input.data();
    p.input_length = 9;
    p.weights = w.data();
    p.weights_length = 9;
    p.bias = bias.data();
    p.bias_length = 1;
    p.output = out.data();
    p.output_length = 9;
    dac::Status s = conv2d_with(p, v.c_str());
    std::string why = s.message;
    report(s.ok && close(out, want, 1e-6, &why), "conv2d known values [" + v + "]", why);
  }
}

void expect_error(dac::Status s, const std::string& name, const char* needle) {
  const bool ok = !s.ok && s.message.find(needle) != std::string::npos;
  report(ok, "rejects " + name, s.ok ? "accepted" : "message: " + s.message);
}

void test_bad_arguments() {
  Case k{2, 5, 6, 3, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, true, dac::Activation::Relu, 1};
  DwPwData d = make_dwpw(k, 7);
  std::vector<float> out(static_cast<size_t>(out_len(d.g)));
  auto good = [&] { return d.params(k, out); };
  dac::DwPwParams p = good();
  report(dac::dwpw_forward(p).ok, "bad-argument baseline accepted");

  p = good(); p.input_length -= 1; expect_error(dac::dwpw_forward(p), "short input", "input");
  p = good(); p.depthwise_length += 1; expect_error(dac::dwpw_forward(p), "long depthwise", "depthwise");
  p = good(); p.pointwise = nullptr; expect_error(dac::dwpw_forward(p), "null pointwise", "pointwise");
  p = good(); p.bias_length = 3; expect_error(dac::dwpw_forward(p), "short bias", "bias");
  p = good(); p.bias = nullptr; expect_error(dac::dwpw_forward(p), "null bias with a length", "bias");
  p = good(); p.output_length = 0; expect_error(dac::dwpw_forward(p), "empty output", "output");
  p = good(); p.g.out_h += 1; expect_error(dac::dwpw_forward(p), "wrong out_h", "out_h");
  p = good(); p.g.out_w -= 1; expect_error(dac::dwpw_forward(p), "wrong out_w", "out_w");
  p = good(); p.g.stride_h = 0; expect_error(dac::dwpw_forward(p), "stride 0", "stride_h");
  p = good(); p.g.dilation_w = -1; expect_error(dac::dwpw_forward(p), "negative dilation", "dilation_w");
  p = good(); p.g.pad_left = -1; expect_error(dac::dwpw_forward(p), "negative pad", "pad_left");
  p = good(); p.g.in_c = 0; expect_error(dac::dwpw_forward(p), "zero channels", "in_c");
  p = good(); p.g.batch = 1 << 30; expect_error(dac::dwpw_forward(p), "huge batch", "batch");
  p = good(); p.rank = 0; expect_error(dac::dwpw_forward(p), "rank 0", "rank");
  p = good(); p.threads = 0; expect_error(dac::dwpw_forward(p), "threads 0", "threads");
  p = good(); p.activation = static_cast<dac::Activation>(7); expect_error(dac::dwpw_forward(p), "activation 7", "activation");
  p = good(); p.output = const_cast<float*>(d.input.data()); p.output_length = p.input_length;
  p.g.batch = 2;
  expect_error(dac::dwpw_forward(p), "output aliasing input", "output");
  // A kernel larger than the padded input has no valid output size.
  p = good(); p.g.kh = 9; p.g.pad_top = p.g.pad_bottom = 0; p.g.out_h = 1;
  expect_error(dac::dwpw_forward(p), "kernel over padded input", "out_h");
  p = good(); expect_error(dwpw_with(p, "mmx"), "unknown variant", "variant 'mmx'");

  Rng rng(3);
  std::vector<float> w = rng.vec(4 * 3 * 9);
  dac::Conv2DParams c;
  c.g = d.g;
  c.input = d.input.data();
  c.input_length = static_cast<int64_t>(d.input.size());
  c.weights = w.data();
  c.weights_length = static_cast<int64_t>(w.size());
  c.output = out.data();
  c.output_length = static_cast<int64_t>(out.size());
  report(dac::conv2d_forward(c).ok, "conv2d bad-argument baseline accepted");
  dac::Conv2DParams q = c;
  q.weights_length -= 1; expect_error(dac::conv2d_forward(q), "conv2d short weights", "weights");
  q = c; q.input = nullptr; expect_error(dac::conv2d_forward(q), "conv2d null input", "input");
  q = c; q.g.kw = 0; expect_error(dac::conv2d_forward(q), "conv2d kw 0", "kw");
  q = c; q.g.out_c = 5; expect_error(dac::conv2d_forward(q), "conv2d wrong out_c", "weights");
  q = c; q.threads = -3; expect_error(dac::conv2d_forward(q), "conv2d negative threads", "threads");
  q = c; expect_error(conv2d_with(q, "avx9"), "conv2d unknown variant", "variant 'avx9'");
}

// Each list starts with "ref" and names every variant once; the default
// (the best) is the last.
void test_variant_lists() {
  for (const char* list : {dac::dwpw_variants(), dac::conv2d_variants()}) {
    const std::vector<std::string> v = split(list);
    bool unique = true;
    for (size_t i = 0; i < v.size(); ++i)
      for (size_t j = 0; j < i; ++j) unique = unique && v[i] != v[j];
    report(!v.empty() && v.front() == "ref" && unique, "variant list", list);
  }
  std::printf("dwpw variants: %s; conv2d variants: %s (the default last)\n", dac::dwpw_variants(), dac::conv2d_variants());
}

// Packed weights are cached across calls keyed by the weights' address: a
// change made in place, or the same buffer read with another shape, must
// never reuse a stale packing.
void test_weight_cache() {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Case k{1, 9, 8, 20, 37, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, true, dac::Activation::None, 1};
  DwPwData d = make_dwpw(k, 99);
  std::vector<float> ref(static_cast<size_t>(out_len(d.g))), out(ref.size());
  for (const std::string& v : split(dac::dwpw_variants())) {
    for (int round = 0; round < 3; ++round) {
      if (round == 1) d.pw[d.pw.size() / 2] += 0.5f;  // in place: same address and length
      if (round == 2) d.dw[3] -= 0.25f;
      std::fill(ref.begin(), ref.end(), nan);
      std::fill(out.begin(), out.end(), nan);
      dac::Status s1 = dwpw_with(d.params(k, ref), "ref");
      dac::Status s2 = dwpw_with(d.params(k, out), v.c_str());
      std::string why = s1.message + s2.message;
      report(s1.ok && s2.ok && close(out, ref, 1e-4, &why), "dwpw weights changed in place, round " +
             std::to_string(round) + " [" + v + "]", why);
    }
    // The same pointwise buffer as in_c=10, rank=4 (same length, new meaning).
    Case k2 = k;
    k2.c = 10;
    k2.rank = 4;
    DwPwData d2 = make_dwpw(k2, 100);
    d2.pw = d.pw;
    dac::DwPwParams p2 = d2.params(k2, out), r2 = d2.params(k2, ref);
    p2.pointwise = r2.pointwise = d.pw.data();
    std::fill(out.begin(), out.end(), nan);
    dac::Status s1 = dwpw_with(r2, "ref");
    dac::Status s2 = dwpw_with(p2, v.c_str());
    std::string why = s1.message + s2.message;
    report(s1.ok && s2.ok && close(out, ref, 1e-4, &why), "dwpw same weights buffer, new shape [" + v + "]", why);
  }
  Rng rng(5);
  std::vector<float> input = rng.vec(2 * 11 * 7 * 6), w = rng.vec(19 * 6 * 9);
  dac::ConvGeometry g = geometry(Case{2, 11, 7, 6, 19, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, false, dac::Activation::None, 1});
  std::vector<float> cref(static_cast<size_t>(out_len(g))), cout(cref.size());
  auto params = [&](std::vector<float>& o) {
    dac::Conv2DParams p;
    p.g = g;
    p.input = input.data();
    p.input_length = static_cast<int64_t>(input.size());
    p.weights = w.data();
    p.weights_length = static_cast<int64_t>(w.size());
    p.output = o.data();
    p.output_length = static_cast<int64_t>(o.size());
    return p;
  };
  for (const std::string& v : split(dac::conv2d_variants())) {
    for (int round = 0; round < 2; ++round) {
      if (round == 1) w.back() *= -3.f;
      std::fill(cref.begin(), cref.end(), nan);
      std::fill(cout.begin(), cout.end(), nan);
      dac::Status s1 = conv2d_with(params(cref), "ref");
      dac::Status s2 = conv2d_with(params(cout), v.c_str());
      std::string why = s1.message + s2.message;
      report(s1.ok && s2.ok && close(cout, cref, 1e-4, &why), "conv2d weights changed in place, round " +
             std::to_string(round) + " [" + v + "]", why);
    }
  }
}

Case with_pads(Case k, const char* mode) {
  if (std::strcmp(mode, "valid") == 0) {
    k.pt = k.pl = k.pb = k.pr = 0;
  } else if (std::strcmp(mode, "same") == 0) {
    same_pads(k.h, k.kh, k.sh, k.dh, &k.pt, &k.pb);
    same_pads(k.w, k.kw, k.sw, k.dw, &k.pl, &k.pr);
  } else {  // explicit, asymmetric
    k.pt = 2;
    k.pl = 0;
    k.pb = 1;
    k.pr = 3;
  }
  return k;
}

bool fits(const Case& k) {
  return k.h + k.pt + k.pb >= k.dh * (k.kh - 1) + 1 && k.w + k.pl + k.pr >= k.dw * (k.kw - 1) + 1;
}

}  // namespace

int main() {
  test_variant_lists();
  test_known_values();
  test_bad_arguments();
  test_weight_cache();

  // Sampled combinations of the odd shapes (a fixed stride through the grid
  // keeps the run short while every value of every axis appears).
  const int chans[] = {1, 2, 3, 5, 8, 13, 16, 17, 33};
  const int sizes[] = {1, 7, 13};
  const int kernels[][2] = {{1, 1}, {3, 3}, {5, 5}, {7, 7}, {1, 3}};
  const char* pads[] = {"same", "valid", "explicit"};
  const dac::Activation acts[] = {dac::Activation::None, dac::Activation::Relu, dac::Activation::Relu6};
  uint64_t seed = 1;
  int run = 0;
  for (int ci = 0; ci < 9; ++ci) {
    for (int ni = 0; ni < 9; ++ni) {
      for (int ki = 0; ki < 5; ++ki) {
        const int combo = ci * 45 + ni * 5 + ki;
        if (combo % 4 != 0) continue;
        Case k{};
        k.batch = (combo % 3 == 0) ? 3 : 1;
        k.h = sizes[combo % 3];
        k.w = sizes[(combo / 3) % 3];
        k.c = chans[ci];
        k.n = chans[ni];
        k.kh = kernels[ki][0];
        k.kw = kernels[ki][1];
        k.sh = k.sw = (combo % 5 == 1) ? 2 : 1;
        k.dh = k.dw = (combo % 7 == 2) ? 2 : 1;
        if (combo % 11 == 3) k.sw = 2;
        k = with_pads(k, pads[combo % 3]);
        if (!fits(k)) k = with_pads(k, "same");
        const int max_rank = std::min(k.n, k.kh * k.kw);
        k.rank = 1 + combo % max_rank;
        k.bias = combo % 2 == 0;
        k.act = acts[combo % 3];
        k.threads = 1 + combo % 3;
        test_dwpw_case(k, seed++);
        test_conv_case(k, seed++);
        ++run;
      }
    }
  }
  // Shapes that cross the tiling: several K blocks with leftover channels,
  // partial output panels, many pixel tiles, ranks above the vector tiling.
  const Case big[] = {
      {1, 20, 19, 70, 100, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 5, true, dac::Activation::Relu, 1},
      {2, 17, 23, 64, 65, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 9, false, dac::Activation::None, 2},
      {1, 15, 15, 40, 129, 5, 5, 1, 1, 2, 2, 4, 4, 4, 4, 7, true, dac::Activation::Relu6, 3},
      {1, 12, 9, 300, 24, 1, 3, 1, 1, 1, 1, 0, 1, 0, 1, 3, true, dac::Activation::None, 2},
      {3, 9, 11, 35, 47, 7, 7, 1, 2, 1, 1, 3, 3, 3, 3, 13, true, dac::Activation::Relu, 2},
      {1, 30, 30, 257, 33, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, false, dac::Activation::None, 1},
      // Five channel blocks, the last holding only leftover channels.
      {1, 6, 5, 200, 19, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 9, true, dac::Activation::Relu, 2},
  };
  for (const Case& k : big) {
    test_dwpw_case(k, seed++);
    test_conv_case(k, seed++);
    ++run;
  }
  std::printf("%d shapes; %d passed, %d failed\n", run, g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
