// The fused backward. Nothing of the forward's intermediate was kept: each tile recomputes its
// depthwise result from the input (only where the pointwise weight gradient or the activation
// needs it), then, in the worker's buffers,
//   grad of the pointwise weight += grad_output's tile x act(mid)^T   (GEMM, per chunk)
//   gmid = W^T grad_output's tile, through the activation             (GEMM)
//   depthwise weight and bias gradients from gmid and the band's input (the depthwise kernels)
//   grad_input of the band's input rows from gmid                      (the depthwise kernels)
// Rows of grad_input that one band alone reads go straight to grad_input; rows that several read
// are kept per band and summed band by band after the tiles (rows none reads are zero). The
// weight gradients are summed per chunk of tiles (plan.h), then chunk by chunk: every sum has a
// fixed order, independent of the thread count.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <type_traits>
#include <utility>

#include "tiles.h"

namespace atrous {
namespace cpu {

namespace {

enum Grad { kInput = 0, kDwWeight = 1, kDwBias = 2, kPwWeight = 3, kPwBias = 4 };

template <typename T>
class BackwardTiles {
  using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;
  static constexpr bool kSameAcc = std::is_same_v<T, acc_t>;

 public:
  BackwardTiles(const SeparableArgs& a, const SeparablePlan& plan, const at::Tensor& go,
                std::array<at::Tensor, 5>& grads)
      : a_(a), p_(a.p), plan_(plan), go_(go), g_(grads) {
    for (int i = 0; i < 5; ++i) want_[i] = g_[i].defined();
    need_gmid_ = want_[kInput] || want_[kDwWeight] || want_[kDwBias];
    need_act_ = want_[kPwWeight] || (need_gmid_ && a.act != Activation::kNone);
    const auto acc = a.input.options().dtype(c10::CppTypeToScalarType<acc_t>::value);
    const int64_t cm = p_.out_channels, co = a.out_channels;
    sums_[kPwWeight] = partial_sums(kPwWeight, co * cm);
    sums_[kPwBias] = partial_sums(kPwBias, co);
    sums_[kDwWeight] = partial_sums(kDwWeight, cm * p_.kernel_h * p_.kernel_w);
    sums_[kDwBias] = partial_sums(kDwBias, cm);
    if (want_[kInput]) {
      flipped_ = a.dw_weight.flip({2, 3}).contiguous();
      overlaps_ = band_overlaps(p_, plan);
      shared_ = at::empty({p_.batch * overlaps_.shared_per_image * p_.channels * p_.in_w}, a.input.options());
    }
  }

  void run() {
    auto run_chunks = [&](int64_t begin, int64_t end) {
      TileWorker<T> w(a_, plan_);
      Buffers buf(a_, plan_);
      for (int64_t c = begin; c < end; ++c) {
        const int64_t t0 = c * plan_.tasks / plan_.chunks, t1 = (c + 1) * plan_.tasks / plan_.chunks;
        Chunk chunk{c};
        for (int64_t task = t0; task < t1; ++task) tile(w, buf, task, chunk);
        for (int i = kDwWeight; i <= kPwBias; ++i) {
          if (sums_[i].defined() && !chunk.started[i]) sums_[i][c].zero_();  // no tile added to it
        }
      }
    };
    if (plan_.order == TileOrder::kSerial) {
      run_chunks(0, plan_.chunks);  // in this thread; every step inside uses all threads
    } else {
      at::parallel_for(0, plan_.chunks, 1, run_chunks);
    }
    if (want_[kInput]) finish_input_grad();
    for (int i = kDwWeight; i <= kPwBias; ++i) reduce(sums_[i], g_[i]);
  }

 private:
  // One thread's buffers besides the TileWorker's.
  struct Buffers {
    at::Tensor gmid, band_gi, dw_w;
    Buffers(const SeparableArgs& a, const SeparablePlan& plan) {
      const auto& p = a.p;
      gmid = at::empty({plan.max_tile_pixels * p.out_channels}, a.input.options());
      if (plan.bands > 1) band_gi = at::empty({p.channels * plan.max_band_rows * p.in_w}, a.input.options());
      dw_w = at::empty({p.out_channels * p.kernel_h * p.kernel_w},
                       a.input.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    }
  };

  // A chunk's partial sums: the first tile that adds to one writes it instead (the sums are
  // not zeroed first: with one chunk of the accumulation type they are the gradient itself, and a
  // (2048, 1536) pointwise weight gradient zeroed, summed into, cloned and copied cost 0.6 ms of
  // a 7 ms backward).
  struct Chunk {
    int64_t index;
    bool started[5] = {};
    // beta for a product added into partial sum i (0: write), and mark it started.
    double beta(int i) { return std::exchange(started[i], true) ? 1.0 : 0.0; }
    // part += value, or part = value for the first.
    void add(int i, at::Tensor part, const at::Tensor& value) {
      if (beta(i) == 0.0) part.copy_(value);
      else part.add_(value);
    }
  };

  // (chunks, size) partial sums of gradient i in acc_t, if asked for: the gradient itself where
  // there is one chunk and it has that type.
  at::Tensor partial_sums(int i, int64_t size) const {
    if (!want_[i]) return at::Tensor();
    if (plan_.chunks == 1 && kSameAcc) return g_[i].view({1, size});
    return at::empty({plan_.chunks, size}, a_.input.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
  }

  static at::Tensor to_acc(const at::Tensor& t) {
    return kSameAcc ? t : t.to(c10::CppTypeToScalarType<acc_t>::value);
  }

  void tile(TileWorker<T>& w, Buffers& buf, int64_t task, Chunk& chunk) {
    const int64_t c = chunk.index;
    const Band b = band_of(p_, plan_, task);
    const T* src = w.band_input(b);
    at::Tensor act;
    if (need_act_) act = w.depthwise(b, src);
    const at::Tensor go = w.image_tile(go_, b, a_.out_channels);
    const at::IntArrayRef pd = w.pixel_dims();
    if (want_[kPwWeight]) {
      at::Tensor acc = sums_[kPwWeight][c].view({a_.out_channels, p_.out_channels});
      w.add_pointwise_weight_grad(acc, to_acc(go), to_acc(act), chunk.beta(kPwWeight));
    }
    if (want_[kPwBias]) chunk.add(kPwBias, sums_[kPwBias][c], at::sum(go, {pd}, false, sums_[kPwBias].scalar_type()));
    if (!need_gmid_) return;
    at::Tensor gmid = w.matrix(buf.gmid, b, p_.out_channels);
    w.mid_grad(gmid, go, b);
    if (a_.act != Activation::kNone) w.activation_grad(gmid, act);
    if (want_[kDwBias]) chunk.add(kDwBias, sums_[kDwBias][c], at::sum(gmid, {pd}, false, sums_[kDwBias].scalar_type()));
    if (!b.reads_input()) return;
    if (want_[kDwWeight]) depthwise_weight_grad(b, src, gmid, buf, chunk);
    if (want_[kInput]) {
      // Whole images: straight into grad_input; bands: into the band's rows, then where they go.
      const bool whole = plan_.bands == 1;
      T* gi = whole ? g_[kInput].template mutable_data_ptr<T>() + b.n * p_.channels * p_.in_h * p_.in_w
                    : buf.band_gi.template mutable_data_ptr<T>();
      run_dw_backward_input<T>(b.q, tile_backward_input_plan(plan_, b.q, sizeof(T)), gmid.template const_data_ptr<T>(),
                               a_.dw_weight.template const_data_ptr<T>(), flipped_.template const_data_ptr<T>(),
                               gi);
      if (!whole) scatter_input_grad(b, task % plan_.bands, gi);
    }
  }

  // The band's depthwise weight gradient in the accumulation type (half types: the float kernels
  // on float copies of the band), added to the chunk's sum.
  void depthwise_weight_grad(const Band& b, const T* src, const at::Tensor& gmid, Buffers& buf, Chunk& chunk) {
    acc_t* gw = buf.dw_w.template mutable_data_ptr<acc_t>();
    const DwBackwardWeightPlan plan = tile_backward_weight_plan(plan_, b.q, sizeof(acc_t));
    if constexpr (kSameAcc) {
      run_dw_backward_params<T>(b.q, plan, gmid.template const_data_ptr<T>(), src, gw, nullptr);
    } else {
      const int64_t n = b.images * p_.channels * b.q.in_h * p_.in_w;
      const at::Tensor in = to_acc(at::from_blob(const_cast<T*>(src), {n}, a_.input.options()));
      const at::Tensor gm = to_acc(gmid.contiguous());
      run_dw_backward_params<acc_t>(b.q, plan, gm.template const_data_ptr<acc_t>(),
                                    in.template const_data_ptr<acc_t>(), gw, nullptr);
    }
    chunk.add(kDwWeight, sums_[kDwWeight][chunk.index], buf.dw_w);
  }

  // The band's rows of grad_input, computed in `local` (the band's layout): each to grad_input, or
  // to the band's stored shared rows.
  // (The tensors' pointers are taken once per band, and NCHW rows that go to grad_input are copied
  // as one block per channel: per row and channel, data_ptr's checks and the copies of narrow
  // rows cost more than the bytes.)
  void scatter_input_grad(const Band& b, int64_t band, const T* local) {
    const int64_t C = p_.channels, H = p_.in_h, W = p_.in_w, rows = b.in1 - b.in0;
    const int64_t own0 = overlaps_.excl0[band], own1 = overlaps_.excl1[band];
    T* const gi = g_[kInput].template mutable_data_ptr<T>();
    T* const shared = shared_.template mutable_data_ptr<T>();
    const int64_t shared0 = b.n * overlaps_.shared_per_image + overlaps_.shared_offset[band];
    // The shared row of input row r (outside [own0, own1)): C rows of W in either layout.
    auto shared_row = [&](int64_t r) { return shared + (shared0 + shared_row_index(b, overlaps_, band, r)) * C * W; };
    if (a_.nhwc()) {
      for (int64_t r = b.in0; r < b.in1; ++r) {
        T* dst = r >= own0 && r < own1 ? gi + (b.n * H + r) * W * C : shared_row(r);
        std::memcpy(dst, local + (r - b.in0) * W * C, W * C * sizeof(T));
      }
      return;
    }
    for (int64_t c = 0; c < C; ++c) {
      const T* src = local + c * rows * W;  // channel c's rows [in0, in1)
      if (own1 > own0) {
        std::memcpy(gi + ((b.n * C + c) * H + own0) * W, src + (own0 - b.in0) * W, (own1 - own0) * W * sizeof(T));
      }
      for (int64_t r = b.in0; r < b.in1; ++r) {
        if (r < own0 || r >= own1) std::memcpy(shared_row(r) + c * W, src + (r - b.in0) * W, W * sizeof(T));
      }
    }
  }

  // Rows no single band owns: the sum, band by band, of the bands that read them (zero if none).
  void finish_input_grad() {
    const auto& rows = overlaps_.rows_to_finish;
    const int64_t per_image = static_cast<int64_t>(rows.size());
    if (per_image == 0) return;
    std::vector<Band> bands;
    for (int64_t i = 0; i < plan_.bands; ++i) bands.push_back(band_of(p_, plan_, i));
    const int64_t C = p_.channels, H = p_.in_h, W = p_.in_w;
    const T* shared = shared_.template const_data_ptr<T>();
    T* gi = g_[kInput].template mutable_data_ptr<T>();
    at::parallel_for(0, p_.batch * per_image, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> sum(C * W);  // plain loops: no ATen ops in this thread
      for (int64_t i = begin; i < end; ++i) {
        const int64_t n = i / per_image, r = rows[i % per_image];
        std::fill(sum.begin(), sum.end(), acc_t(0));
        for (int64_t band = 0; band < plan_.bands; ++band) {
          const Band& b = bands[band];
          if (r < b.in0 || r >= b.in1) continue;
          const T* s = shared + (n * overlaps_.shared_per_image + overlaps_.shared_offset[band] +
                                 shared_row_index(b, overlaps_, band, r)) * C * W;
          for (int64_t j = 0; j < C * W; ++j) sum[j] += static_cast<acc_t>(s[j]);
        }
        if (a_.nhwc()) {
          T* d = gi + (n * H + r) * W * C;
          for (int64_t j = 0; j < C * W; ++j) d[j] = static_cast<T>(sum[j]);
        } else {
          for (int64_t c = 0; c < C; ++c) {
            T* d = gi + ((n * C + c) * H + r) * W;
            for (int64_t x = 0; x < W; ++x) d[x] = static_cast<T>(sum[c * W + x]);
          }
        }
      }
    });
  }

  // grad = the chunks' partial sums added in chunk order (nothing to do where the one chunk's
  // sums are the gradient).
  void reduce(const at::Tensor& parts, at::Tensor& grad) {
    if (!parts.defined() || parts.data_ptr() == grad.data_ptr()) return;
    at::Tensor total = kSameAcc ? grad.view(parts[0].sizes()).copy_(parts[0]) : parts[0].clone();
    for (int64_t c = 1; c < parts.size(0); ++c) total.add_(parts[c]);
    if (!kSameAcc) grad.view(total.sizes()).copy_(total);
  }

  const SeparableArgs& a_;
  const DepthwiseParams& p_;
  const SeparablePlan& plan_;
  const at::Tensor& go_;
  std::array<at::Tensor, 5>& g_;
  bool want_[5] = {};
  bool need_gmid_ = false, need_act_ = false;
  std::array<at::Tensor, 5> sums_;  // of the weight gradients: (chunks, size) partial sums in acc_t
  at::Tensor flipped_, shared_;
  BandOverlaps overlaps_;
};

}  // namespace

void separable_backward(const SeparableArgs& a, const SeparablePlan& plan, const at::Tensor& grad_output,
                        std::array<at::Tensor, 5>& grads) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.input.scalar_type(), "atrous_separable_bwd", [&] {
    BackwardTiles<scalar_t>(a, plan, grad_output, grads).run();
  });
}

}  // namespace cpu
}  // namespace atrous
