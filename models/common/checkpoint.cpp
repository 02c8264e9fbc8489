// models/common/checkpoint.cpp: see checkpoint.h.
#include "models/common/checkpoint.h"

namespace causvid::models {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct FnHolder : torch::CustomClassHolder {
  CheckpointFn fn;
  explicit FnHolder(CheckpointFn f) : fn(std::move(f)) {}
};

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  // The inputs arrive as a TensorList: autograd's argument scanner treats only Tensor,
  // optional<Tensor> and TensorList as differentiable (a std::vector would be ignored).
  static torch::Tensor forward(AutogradContext* ctx, at::TensorList inputs,
                               c10::intrusive_ptr<FnHolder> holder) {
    ctx->saved_data["fn"] = c10::IValue::make_capsule(holder);
    variable_list in(inputs.begin(), inputs.end());
    ctx->save_for_backward(in);
    torch::NoGradGuard no_grad;
    return holder->fn(in);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto holder = c10::static_intrusive_pointer_cast<FnHolder>(ctx->saved_data["fn"].toCapsule());
    auto saved = ctx->get_saved_variables();
    variable_list detached;
    for (const auto& t : saved) {
      if (!t.defined()) {
        detached.push_back(t);
        continue;
      }
      auto d = t.detach();
      d.set_requires_grad(t.requires_grad());
      detached.push_back(d);
    }
    torch::Tensor out;
    {
      torch::AutoGradMode enable(true);
      out = holder->fn(detached);
    }
    if (out.requires_grad()) torch::autograd::backward({out}, {grads[0]});
    variable_list result;
    for (const auto& d : detached) result.push_back(d.defined() ? d.grad() : torch::Tensor());
    result.push_back(torch::Tensor());  // holder
    return result;
  }
};

}  // namespace

torch::Tensor checkpoint(const CheckpointFn& fn, const std::vector<torch::Tensor>& inputs) {
  return CheckpointFunction::apply(at::TensorList(inputs), c10::make_intrusive<FnHolder>(fn));
}

}  // namespace causvid::models
