// Host side of the fused separable convolution: the problem (SeparableArgs) and the working set of
// whoever runs a tile (TileWorker: one thread's, or the calling thread's in serial order): the
// band's input rows, the tile's depthwise result in a cache-sized buffer, and the pointwise
// products on it (plan.h: PointwiseEngine; the pointwise weight gradient: torch's CPU GEMM). The
// depthwise part runs the depthwise op's own kernels (../depthwise/run.h) on the tile's
// sub-problem (plan.h: Band).
//
// Matrices of a tile, G its images, P the pixels of one image's part, Cm = C*m, Co the pointwise
// outputs:
//   NCHW: depthwise result (G, Cm, P); the output's and grad_output's tile (G, Co, P), strides
//         (Co*oH*oW, oH*oW, 1);
//   NHWC: depthwise result (G*P, Cm); the output's and grad_output's tile (G*P, Co), contiguous.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/LegacyTypeDispatch.h>

#include <array>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../../common/separable_host.h"
#include "../depthwise/run.h"
#include "plan.h"

namespace atrous {
namespace cpu {

template <typename T>
class TileWorker {
 public:
  TileWorker(const SeparableArgs& a, const SeparablePlan& plan)
      : a_(a), plan_(plan), cm_(a.p.out_channels), opts_(a.input.options()) {
    onednn_ = std::is_same_v<T, float> && plan.pointwise == PointwiseEngine::kOneDnn;
    mid_grad_ = plan.mid_grad;
    if (onednn_) pw4_ = a.pw_weight.view({a.out_channels, cm_, 1, 1});
    if (!a.nhwc() && plan.bands > 1) band_in_.resize(a.p.channels * plan.max_band_rows * a.p.in_w);
    mid_ = at::empty({plan.max_tile_pixels * cm_}, opts_);
  }

  // The band's input rows in the sub-problem's layout: in place for channels_last and for whole
  // images, else copied channel by channel.
  const T* band_input(const Band& b) {
    const DepthwiseParams& p = a_.p;
    const T* in = a_.input.template const_data_ptr<T>();
    const int64_t image = p.channels * p.in_h * p.in_w;
    if (a_.nhwc()) return in + b.n * image + b.in0 * p.in_w * p.channels;
    if (band_in_.empty()) return in + b.n * image;
    const int64_t rows = b.in1 - b.in0;
    for (int64_t c = 0; c < p.channels; ++c) {
      std::memcpy(band_in_.data() + c * rows * p.in_w, in + b.n * image + (c * p.in_h + b.in0) * p.in_w,
                  rows * p.in_w * sizeof(T));
    }
    return band_in_.data();
  }

  // The tile's depthwise result, activated: a matrix in this worker's buffer.
  at::Tensor depthwise(const Band& b, const T* src) {
    at::Tensor mid = matrix(mid_, b, cm_);
    const T* bias = a_.dw_bias.defined() ? a_.dw_bias.template const_data_ptr<T>() : nullptr;
    if (b.reads_input()) {
      run_dw_forward<T>(b.q, tile_forward_plan(plan_, b.q, sizeof(T)), src, a_.dw_weight.template const_data_ptr<T>(), bias,
                        mid.template mutable_data_ptr<T>());
    } else if (bias != nullptr) {  // rows of padding only: the bias
      mid.copy_(a_.nhwc() ? a_.dw_bias.view({1, cm_}) : a_.dw_bias.view({cm_, 1}));
    } else {
      mid.zero_();
    }
    if (a_.act == Activation::kRelu) at::relu_(mid);
    if (a_.act == Activation::kRelu6) at::hardtanh_(mid, 0, 6);
    return mid;
  }

  // A tile-shaped matrix over the start of `buffer` (see the top of this file).
  at::Tensor matrix(const at::Tensor& buffer, const Band& b, int64_t channels) const {
    const int64_t t = b.pixels();
    const at::Tensor part = buffer.narrow(0, 0, t * channels);
    return a_.nhwc() ? part.view({t, channels}) : part.view({b.images, channels, t / b.images});
  }

  // The tile of an (N, channels, oH, oW) tensor in p.layout.
  at::Tensor image_tile(const at::Tensor& t, const Band& b, int64_t channels) const {
    const DepthwiseParams& p = a_.p;
    const int64_t plane = p.out_h * p.out_w;
    if (a_.nhwc()) {
      return t.as_strided({b.pixels(), channels}, {channels, 1}, (b.n * plane + b.oh0 * p.out_w) * channels);
    }
    return t.as_strided({b.images, channels, (b.oh1 - b.oh0) * p.out_w}, {channels * plane, plane, 1},
                        b.n * channels * plane + b.oh0 * p.out_w);
  }

  // The dimensions of a tile matrix that run over pixels.
  at::IntArrayRef pixel_dims() const {
    static constexpr int64_t kNhwc[] = {0}, kNchw[] = {0, 2};
    return a_.nhwc() ? at::IntArrayRef(kNhwc) : at::IntArrayRef(kNchw);
  }

  // out = W act(mid) (+ bias): the pointwise product into the output's tile, as oneDNN's 1x1
  // convolution on the tile (what F.conv2d runs on the whole tensor at more than one thread) into
  // a tile-sized result copied into the output, or as GEMMs straight into the output.
  void pointwise(at::Tensor& out, const at::Tensor& act, const Band& b) const {
    const at::Tensor& w = a_.pw_weight;
    if (onednn_) {
      conv1x1_into(out, act, b, pw4_, a_.pw_bias.defined() ? std::optional<at::Tensor>(a_.pw_bias) : std::nullopt);
      return;
    }
    if (a_.nhwc()) {
      if (a_.pw_bias.defined()) at::addmm_out(out, a_.pw_bias, act, w.t());
      else at::mm_out(out, act, w.t());
      return;
    }
    for (int64_t g = 0; g < b.images; ++g) {
      at::Tensor o = out.select(0, g);
      if (a_.pw_bias.defined()) at::addmm_out(o, a_.pw_bias.view({a_.out_channels, 1}), w, act.select(0, g));
      else at::mm_out(o, w, act.select(0, g));
    }
  }

  // acc (Co, Cm) = beta acc + grad_output's tile times act(mid), transposed (beta 0: acc is
  // written, whatever it held).
  void add_pointwise_weight_grad(at::Tensor& acc, const at::Tensor& go, const at::Tensor& act, double beta) const {
    if (a_.nhwc()) {
      acc.addmm_(go.t(), act, beta);
      return;
    }
    for (int64_t g = 0; g < go.size(0); ++g) acc.addmm_(go.select(0, g), act.select(0, g).t(), g == 0 ? beta : 1.0);
  }

  // The depthwise result's gradient: W^T grad_output's tile, into gmid, as the plan says
  // (plan.h: MidGrad).
  void mid_grad(at::Tensor& gmid, const at::Tensor& go, const Band& b) {
    if (onednn_ && mid_grad_ == MidGrad::kBackwardData) {
      const at::Tensor r = std::get<0>(at::convolution_backward(
          tile_image(go, b), tile_image(gmid, b), pw4_, std::nullopt, {1, 1}, {0, 0}, {1, 1}, false, {0, 0}, 1,
          {true, false, false}));
      gmid.copy_(matrix_of(r, b));
      return;
    }
    if (onednn_) {
      if (!pw4_t_.defined()) pw4_t_ = a_.pw_weight.t().contiguous().view({cm_, a_.out_channels, 1, 1});
      conv1x1_into(gmid, go, b, pw4_t_, std::nullopt);
      return;
    }
    if (a_.nhwc()) {
      at::mm_out(gmid, go, a_.pw_weight);
      return;
    }
    for (int64_t g = 0; g < b.images; ++g) {
      at::Tensor m = gmid.select(0, g);
      at::mm_out(m, a_.pw_weight.t(), go.select(0, g));
    }
  }

  // dst (a tile matrix) = w src (+ bias) for a (co, ci, 1, 1) weight, by oneDNN's 1x1
  // convolution (what F.conv2d runs at more than one thread) on the tile seen as images (see
  // tile_image); its result is copied into dst.
  void conv1x1_into(at::Tensor& dst, const at::Tensor& src, const Band& b, const at::Tensor& w,
                    const std::optional<at::Tensor>& bias) const {
    const at::Tensor r = at::mkldnn_convolution(tile_image(src, b), w, bias, {0, 0}, {1, 1}, {1, 1}, 1);
    dst.copy_(matrix_of(r, b));
  }

  // A tile matrix (see the top of this file) as the (G, channels, rows, oW) images it is:
  // channels_last for NHWC tiles, NCHW ones as they lie (oneDNN runs a (1, ci, 1, T)
  // channels_last image 5x slower than the same pixels as rows).
  at::Tensor tile_image(const at::Tensor& m, const Band& b) const {
    const int64_t g = b.images, rows = b.oh1 - b.oh0, ow = a_.p.out_w;
    if (a_.nhwc()) return m.view({g, rows, ow, m.size(1)}).permute({0, 3, 1, 2});
    return m.as_strided({g, m.size(1), rows, ow}, {m.stride(0), m.stride(1), ow, 1});
  }

  // The (G, channels, rows, oW) images of oneDNN's result as a tile matrix (a copy where the
  // layouts differ).
  at::Tensor matrix_of(const at::Tensor& r, const Band& b) const {
    const int64_t g = b.images, rows = b.oh1 - b.oh0, ow = a_.p.out_w, c = r.size(1);
    return a_.nhwc() ? r.permute({0, 2, 3, 1}).reshape({g * rows * ow, c}) : r.reshape({g, c, rows * ow});
  }

  // Through the activation, as torch's relu / relu6 backward (from the activated value: zero
  // where it is <= 0, or >= 6 for relu6; NaN passes).
  void activation_grad(at::Tensor& gmid, const at::Tensor& act) const {
    if (a_.act == Activation::kRelu) at::threshold_backward_out(gmid, gmid, act, 0);
    if (a_.act == Activation::kRelu6) at::hardtanh_backward_out(gmid, gmid, act, 0, 6);
  }

 private:
  // Worker threads do not inherit the caller's dispatch state: the ATen ops here run below
  // autograd in every thread.
  at::AutoDispatchBelowADInplaceOrView below_autograd_;
  const SeparableArgs& a_;
  const SeparablePlan& plan_;
  const int64_t cm_;
  const at::TensorOptions opts_;
  std::vector<T> band_in_;
  at::Tensor mid_;
  bool onednn_ = false;
  MidGrad mid_grad_;
  at::Tensor pw4_, pw4_t_;  // the pointwise weight as (Co, Cm, 1, 1) and transposed, for oneDNN
};

// Entry points (forward_host.cpp, backward_host.cpp).
at::Tensor separable_forward(const SeparableArgs& a, const SeparablePlan& plan);

// The gradients `mask` asks for, of (input, dw_weight, dw_bias, pw_weight, pw_bias), into the
// defined tensors of `grads` (allocated by the caller: grad_input in grad_output's layout).
void separable_backward(const SeparableArgs& a, const SeparablePlan& plan, const at::Tensor& grad_output,
                        std::array<at::Tensor, 5>& grads);

}  // namespace cpu
}  // namespace atrous
