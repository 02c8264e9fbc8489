// trainer/fsdp.cpp: see fsdp.h.
#include "trainer/fsdp.h"

#include <algorithm>
#include <set>

#include "core/log.h"

namespace causvid::trainer {
namespace {

const std::vector<std::string> kStrategies = {"full",          "hybrid_full", "hybrid_zero2",
                                              "shard_grad_op", "zero2",       "no_shard"};

bool is_hybrid(const std::string& s) { return s == "hybrid_full" || s == "hybrid_zero2"; }
bool keeps(const std::string& s) {
  return s == "hybrid_zero2" || s == "shard_grad_op" || s == "zero2" || s == "no_shard";
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

}  // namespace

// One block call under per-unit gathering (see the header comment). Not in the anonymous
// namespace: ShardedModule's block hooks are reached through the holder.
namespace fsdp_detail {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct BlockCall : torch::CustomClassHolder {
  ShardedModule* sm = nullptr;
  int64_t block = 0;
  models::BlockFn fn;
  size_t n_inputs = 0;  // the inputs of fn; a trailing dummy follows when trainable
  bool reduce = false;  // reduce the block's grads in backward (trainable modules)
};

// Gathers block b's units for its lifetime (also when fn throws).
struct BlockGathered {
  ShardedModule& sm;
  int64_t b;
  BlockGathered(ShardedModule& s, int64_t block) : sm(s), b(block) { sm.gather_block(b); }
  ~BlockGathered() { sm.free_block(b); }
};

class BlockFunction : public torch::autograd::Function<BlockFunction> {
 public:
  // TensorList: autograd treats only Tensor / TensorList arguments as differentiable.
  static variable_list forward(AutogradContext* ctx, at::TensorList inputs,
                               c10::intrusive_ptr<BlockCall> call) {
    ctx->saved_data["call"] = c10::IValue::make_capsule(call);
    variable_list in(inputs.begin(), inputs.end());
    ctx->save_for_backward(in);
    torch::NoGradGuard no_grad;
    BlockGathered g(*call->sm, call->block);
    return call->fn(variable_list(in.begin(), in.begin() + int64_t(call->n_inputs)));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto call = c10::static_intrusive_pointer_cast<BlockCall>(ctx->saved_data["call"].toCapsule());
    auto saved = ctx->get_saved_variables();
    variable_list detached;
    for (size_t i = 0; i < call->n_inputs; ++i) {
      const auto& t = saved[i];
      if (!t.defined()) {
        detached.push_back(t);
        continue;
      }
      auto d = t.detach();
      d.set_requires_grad(t.requires_grad());
      detached.push_back(d);
    }
    {
      BlockGathered g(*call->sm, call->block);
      variable_list outs;
      {
        torch::AutoGradMode enable(true);
        outs = call->fn(detached);
      }
      variable_list o, go;
      for (size_t i = 0; i < outs.size() && i < grads.size(); ++i) {
        if (outs[i].defined() && outs[i].requires_grad() && grads[i].defined()) {
          o.push_back(outs[i]);
          go.push_back(grads[i]);
        }
      }
      if (!o.empty()) torch::autograd::backward(o, go);
      // Every rank runs the same graph, so every rank joins this collective.
      if (call->reduce) call->sm->reduce_block(call->block);
    }
    variable_list result;
    for (const auto& d : detached)
      result.push_back(d.defined() && d.requires_grad() ? d.grad() : torch::Tensor());
    for (size_t i = call->n_inputs; i < saved.size(); ++i) result.push_back(torch::Tensor());
    result.push_back(torch::Tensor());  // the BlockCall
    return result;
  }
};

}  // namespace fsdp_detail

void check_fsdp_options(const FsdpOptions& o) {
  TORCH_CHECK(std::find(kStrategies.begin(), kStrategies.end(), o.strategy) != kStrategies.end(),
              "sharding_strategy: got '", o.strategy,
              "', want full|hybrid_full|hybrid_zero2|shard_grad_op|zero2|no_shard");
  TORCH_CHECK(o.wrap_policy == "size" || o.wrap_policy == "transformer",
              "fsdp_wrap_strategy: got '", o.wrap_policy, "', want size|transformer");
  TORCH_CHECK(o.min_num_params >= 1, "min_num_params: got ", o.min_num_params, ", want >= 1");
}

FsdpOptions fsdp_options_from_config(const core::Config& c, const std::string& which) {
  FsdpOptions o;
  o.strategy = c.sharding_strategy;
  o.mixed_precision = c.mixed_precision;
  std::string module;
  if (which == "generator") {
    o.wrap_policy = c.generator_fsdp_wrap_strategy;
    module = c.generator_fsdp_transformer_module;
  } else if (which == "real_score") {
    o.wrap_policy = c.real_score_fsdp_wrap_strategy;
    module = c.real_score_fsdp_transformer_module;
    o.trainable = false;
  } else if (which == "fake_score") {
    o.wrap_policy = c.fake_score_fsdp_wrap_strategy;
    module = c.fake_score_fsdp_transformer_module;
  } else if (which == "text_encoder") {
    o.wrap_policy = c.text_encoder_fsdp_wrap_strategy;
    module = c.text_encoder_fsdp_transformer_module;
    o.trainable = false;
  } else {
    TORCH_CHECK(false, "fsdp_options_from_config: got '", which,
                "', want generator|real_score|fake_score|text_encoder");
  }
  // CausVid names a Python class (e.g. "CausalWanAttentionBlock"); our units are children of
  // a named submodule, "blocks" for the Wan DiT.
  if (!module.empty() && module.find('.') == std::string::npos &&
      module.find("Block") == std::string::npos)
    o.transformer_module = module;
  check_fsdp_options(o);
  return o;
}

MemoryPlan plan_memory(int64_t numel, const std::string& strategy, int S, bool mixed_precision,
                       bool trainable, int64_t gathered_numel) {
  FsdpOptions o;
  o.strategy = strategy;
  check_fsdp_options(o);
  if (strategy == "no_shard") S = 1;
  TORCH_CHECK(S >= 1, "shard size: got ", S, ", want >= 1");
  const int64_t P = mixed_precision ? 2 : 4;
  const int64_t shard = (numel + S - 1) / S;
  MemoryPlan m;
  m.at_rest.params = (trainable ? 4 : P) * shard;  // frozen shards: compute dtype
  const bool alias = S == 1 && (!mixed_precision || !trainable);
  const bool keep = keeps(strategy);
  const int64_t gathered = gathered_numel < 0 ? numel : std::min(gathered_numel, numel);
  if (keep && !alias) m.at_rest.params += P * numel;
  if (!keep && !alias) m.peak_extra += P * gathered;  // an aliased gather costs nothing
  if (trainable) {
    m.at_rest.grads = 4 * shard;
    m.at_rest.optimizer = 8 * shard;
    m.peak_extra += P * (keep ? numel : gathered);  // module .grad before its reduction
  }
  return m;
}

ShardedModule::ShardedModule(std::shared_ptr<torch::nn::Module> module,
                             std::shared_ptr<core::DistContext> dist, FsdpOptions opts)
    : module_(std::move(module)), dist_(std::move(dist)), opts_(std::move(opts)) {
  check_fsdp_options(opts_);
  TORCH_CHECK(module_ && dist_, "ShardedModule: null module or DistContext");
  single_ = core::DistGroup({}, 0, 1, dist_->timeout(), "self");
  if (opts_.strategy == "no_shard") {
    shard_ = &single_;
    replica_ = &dist_->world();
  } else if (is_hybrid(opts_.strategy)) {
    shard_ = &dist_->shard_group();
    replica_ = &dist_->replica_group();
  } else {
    shard_ = &dist_->world();
    replica_ = &single_;
  }
  keep_params_ = keeps(opts_.strategy);
  compute_dtype_ = opts_.mixed_precision ? torch::kBFloat16 : torch::kFloat32;
  build_units();
  if (!units_.empty() && !units_[0].params.empty()) device_ = units_[0].params[0].device();
  const auto f32 = torch::TensorOptions(torch::kFloat32).device(device_);
  torch::NoGradGuard ng;
  const int S = shard_->size(), r = shard_->rank();
  for (auto& u : units_) {
    // Flatten in fp32, pad, make ranks identical (world rank 0 wins), keep our slice.
    u.shard_numel = (u.numel + S - 1) / S;
    auto flat = torch::zeros({u.shard_numel * S}, f32);
    for (size_t i = 0; i < u.params.size(); ++i)
      flat.narrow(0, u.offsets[i], u.params[i].numel())
          .copy_(u.params[i].detach().to(device_, torch::kFloat32).reshape({-1}));
    dist_->world().broadcast(flat, 0);
    u.shard = flat.narrow(0, int64_t(r) * u.shard_numel, u.shard_numel).clone();
    // A frozen module has no master copy to keep precise: its shard is stored in the compute
    // dtype (bf16 under mixed precision: half the bytes; the gathered values are the same).
    if (!opts_.trainable) u.shard = u.shard.to(compute_dtype_);
    for (auto& p : u.params) {
      p.set_data(torch::empty({0}, p.options().dtype(compute_dtype_)));
      if (!opts_.trainable) p.set_requires_grad(false);
    }
  }
  gathered_ = false;
  if (keep_params_) gather_params();
  if (!keep_params_ && opts_.per_unit) install_runner();
}

ShardedModule::~ShardedModule() {
  if (host_) host_->set_block_runner({});
}

void ShardedModule::install_runner() {
  auto* host = dynamic_cast<models::BlockRunnerHost*>(module_.get());
  if (!host) return;  // not a block model: gather-all
  const std::string list = host->block_list_name() + ".";
  for (size_t i = 0; i < units_.size(); ++i) {
    auto& u = units_[i];
    if (u.name.rfind(list, 0) != 0) continue;
    const std::string rest = u.name.substr(list.size());
    const std::string idx = rest.substr(0, rest.find('.'));
    if (idx.empty() || idx.find_first_not_of("0123456789") != std::string::npos) continue;
    u.block = std::stoll(idx);
    if (size_t(u.block) >= block_units_.size()) block_units_.resize(size_t(u.block) + 1);
    block_units_[size_t(u.block)].push_back(i);
  }
  if (block_units_.empty()) return;  // e.g. the size policy wrapped no block: gather-all
  if (opts_.trainable)
    dummy_ = torch::zeros({1}, torch::TensorOptions(torch::kFloat32).device(device_))
                 .set_requires_grad(true);
  host_ = host;
  host_->set_block_runner(
      [this](int64_t b, const models::BlockFn& fn, const std::vector<torch::Tensor>& in) {
        return run_block(b, fn, in);
      });
}

std::vector<torch::Tensor> ShardedModule::run_block(int64_t b, const models::BlockFn& fn,
                                                    const std::vector<torch::Tensor>& in) {
  if (b < 0 || size_t(b) >= block_units_.size() || block_units_[size_t(b)].empty())
    return fn(in);  // no unit of its own: its params are in a step unit
  bool input_grad = false;
  for (const auto& t : in) input_grad = input_grad || (t.defined() && t.requires_grad());
  if (!torch::GradMode::is_enabled() || (!opts_.trainable && !input_grad)) {
    fsdp_detail::BlockGathered g(*this, b);
    return fn(in);
  }
  auto call = c10::make_intrusive<fsdp_detail::BlockCall>();
  call->sm = this;
  call->block = b;
  call->fn = fn;
  call->n_inputs = in.size();
  call->reduce = opts_.trainable;
  std::vector<torch::Tensor> args = in;
  if (opts_.trainable) args.push_back(dummy_);
  return fsdp_detail::BlockFunction::apply(at::TensorList(args), call);
}

void ShardedModule::gather_block(int64_t b) {
  for (size_t i : block_units_.at(size_t(b))) gather_unit(units_[i]);
}

void ShardedModule::free_block(int64_t b) {
  for (size_t i : block_units_.at(size_t(b))) free_unit(units_[i]);
}

void ShardedModule::reduce_block(int64_t b) {
  torch::NoGradGuard ng;
  for (size_t i : block_units_.at(size_t(b))) {
    reduce_unit(units_[i]);
    ++stats_.backward_reduces;
  }
}

void ShardedModule::reset_gather_stats() {
  stats_ = GatherStats{};
  for (size_t i = 0; i < units_.size(); ++i)
    if (units_[i].full.defined()) stats_.current_bytes += unit_gather_bytes(i);
  stats_.peak_bytes = stats_.current_bytes;
}

int64_t ShardedModule::unit_gather_bytes(size_t i) const {
  const auto& u = units_.at(i);
  if (shard_->size() == 1 && (compute_dtype_ == torch::kFloat32 || !opts_.trainable))
    return 0;  // the params alias the shard
  return u.shard_numel * shard_->size() * int64_t(c10::elementSize(compute_dtype_));
}

void ShardedModule::build_units() {
  auto named = module_->named_parameters(/*recurse=*/true);
  std::set<std::string> assigned;
  auto add_unit = [&](const std::string& prefix) {
    FlatUnit u;
    u.name = prefix;
    for (const auto& kv : named) {
      const std::string& n = kv.key();
      if (assigned.count(n)) continue;
      if (!prefix.empty() && n.rfind(prefix + ".", 0) != 0) continue;
      u.param_names.push_back(n);
      u.params.push_back(kv.value());
      u.shapes.push_back(kv.value().sizes().vec());
      u.offsets.push_back(u.numel);
      u.numel += kv.value().numel();
      assigned.insert(n);
    }
    if (u.numel > 0) units_.push_back(std::move(u));
  };
  if (opts_.wrap_policy == "transformer") {
    bool found = false;
    for (const auto& item : module_->named_modules("", /*include_self=*/false)) {
      if (item.key() != opts_.transformer_module) continue;
      found = true;
      for (const auto& child : item.value()->named_children())
        add_unit(opts_.transformer_module + "." + child.key());
    }
    TORCH_CHECK(found, "fsdp_transformer_module: no submodule named '", opts_.transformer_module,
                "' in the model (want e.g. 'blocks')");
  } else {
    // size_based_auto_wrap_policy: post-order, a submodule whose not-yet-wrapped parameters
    // reach min_num_params becomes a unit; the root takes the rest.
    std::function<void(const std::string&, torch::nn::Module&)> visit =
        [&](const std::string& prefix, torch::nn::Module& m) {
          for (const auto& c : m.named_children())
            visit(prefix.empty() ? c.key() : prefix + "." + c.key(), *c.value());
          if (prefix.empty()) return;
          int64_t n = 0;
          for (const auto& kv : named)
            if (!assigned.count(kv.key()) && kv.key().rfind(prefix + ".", 0) == 0)
              n += kv.value().numel();
          if (n >= opts_.min_num_params) add_unit(prefix);
        };
    visit("", *module_);
  }
  add_unit("");  // root: everything left
  // Registration order of the flat layout must not depend on the policy's visiting order
  // within a unit; units themselves are ordered as created (deterministic on every rank).
}

void ShardedModule::gather_unit(FlatUnit& u, bool force) {
  if (u.full.defined() && !force) return;
  torch::NoGradGuard ng;
  const size_t idx = size_t(&u - units_.data());
  if (u.full.defined()) stats_.current_bytes -= unit_gather_bytes(idx);
  const int S = shard_->size();
  torch::Tensor full;
  if (S == 1 && compute_dtype_ == torch::kFloat32) {
    full = u.shard;  // alias: the optimizer's in-place update is the params' update
  } else if (S == 1) {
    full = u.shard.to(compute_dtype_);  // unsharded: the cast is the whole gather
  } else {
    // Cast first, then gather in the compute dtype (bf16 collectives under mixed precision,
    // as torch FSDP's param_dtype): half the bytes on the wire and no fp32 full copy.
    full = shard_->all_gather(compute_dtype_ == torch::kFloat32 ? u.shard
                                                                : u.shard.to(compute_dtype_));
  }
  u.full = full;
  for (size_t i = 0; i < u.params.size(); ++i)
    u.params[i].set_data(full.narrow(0, u.offsets[i], numel_of(u.shapes[i])).view(u.shapes[i]));
  stats_.current_bytes += unit_gather_bytes(idx);
  stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.current_bytes);
  ++stats_.gathers;
}

void ShardedModule::free_unit(FlatUnit& u) {
  if (!u.full.defined() || keep_params_) return;
  torch::NoGradGuard ng;
  for (auto& p : u.params) p.set_data(torch::empty({0}, p.options()));
  u.full = torch::Tensor();
  stats_.current_bytes -= unit_gather_bytes(size_t(&u - units_.data()));
}

void ShardedModule::gather_params() {
  if (gathered_) return;
  for (auto& u : units_)
    if (!host_ || u.block < 0) gather_unit(u, /*force=*/true);
  gathered_ = true;
}

void ShardedModule::reshard() {
  if (keep_params_) return;
  for (auto& u : units_) free_unit(u);
  gathered_ = false;
}

void ShardedModule::reduce_unit(FlatUnit& u) {
  const int S = shard_->size();
  const double W = double(dist_->world_size());
  auto flat =
      torch::zeros({u.shard_numel * S}, torch::TensorOptions(torch::kFloat32).device(device_));
  for (size_t i = 0; i < u.params.size(); ++i) {
    auto& p = u.params[i];
    auto g = p.grad();
    if (!g.defined()) continue;  // every rank still joins the collective
    flat.narrow(0, u.offsets[i], g.numel()).copy_(g.reshape({-1}));  // fp32 reduction
    p.mutable_grad() = torch::Tensor();
  }
  flat.div_(W);
  auto g = shard_->reduce_scatter(flat);
  replica_->all_reduce(g, "sum");
  if (u.grad.defined())
    u.grad.add_(g);
  else
    u.grad = g;
}

void ShardedModule::reduce_grads() {
  TORCH_CHECK(opts_.trainable, "reduce_grads: module is frozen (trainable = false)");
  torch::NoGradGuard ng;
  for (auto& u : units_) {
    if (host_ && u.block >= 0) {
      // Reduced inside the block's backward; a grad here means the block's parameters were
      // used outside its block call, which per-unit gathering cannot see.
      for (size_t i = 0; i < u.params.size(); ++i)
        TORCH_CHECK(!u.params[i].grad().defined(), "reduce_grads: parameter '", u.param_names[i],
                    "' of block unit '", u.name,
                    "' got a gradient outside its block call (use per_unit = false)");
      continue;
    }
    reduce_unit(u);
  }
  reshard();
}

void ShardedModule::after_step() {
  if (!keep_params_) return;
  const int S = shard_->size();
  if (S == 1 && compute_dtype_ == torch::kFloat32) return;  // params alias the shards
  for (auto& u : units_) gather_unit(u, /*force=*/true);
  gathered_ = true;
}

void ShardedModule::zero_grad() {
  for (auto& u : units_) {
    u.grad = torch::Tensor();
    for (auto& p : u.params) p.mutable_grad() = torch::Tensor();
  }
}

std::map<std::string, torch::Tensor> ShardedModule::full_state_dict(
    bool rank0_only, const std::vector<torch::Tensor>* shards) {
  TORCH_CHECK(!shards || shards->size() == units_.size(), "full_state_dict: ", shards->size(),
              " shards given for ", units_.size(), " units");
  std::map<std::string, torch::Tensor> out;
  const bool keep = !rank0_only || dist_->is_main();
  for (size_t ui = 0; ui < units_.size(); ++ui) {
    const auto& u = units_[ui];
    auto full = shard_->all_gather(shards ? (*shards)[ui] : u.shard);
    if (!keep) continue;  // freed before the next unit is gathered
    for (size_t i = 0; i < u.params.size(); ++i) {
      int64_t n = 1;
      for (auto s : u.shapes[i]) n *= s;
      out[u.param_names[i]] = full.narrow(0, u.offsets[i], n).view(u.shapes[i]).to(torch::kCPU).clone();
    }
  }
  if (keep)
    for (const auto& b : module_->named_buffers()) out[b.key()] = b.value().detach().cpu().clone();
  return out;
}

void ShardedModule::load_full_state_dict(const std::map<std::string, torch::Tensor>& sd) {
  torch::NoGradGuard ng;
  const int r = shard_->rank();
  for (auto& u : units_) {
    for (size_t i = 0; i < u.params.size(); ++i) {
      auto it = sd.find(u.param_names[i]);
      TORCH_CHECK(it != sd.end(), "state dict: missing key '", u.param_names[i], "'");
      TORCH_CHECK(it->second.sizes().vec() == u.shapes[i], "state dict: key '", u.param_names[i],
                  "' has shape ", it->second.sizes(), ", want ", c10::IntArrayRef(u.shapes[i]));
    }
    const int64_t lo = int64_t(r) * u.shard_numel, hi = lo + u.shard_numel;
    u.shard.zero_();
    for (size_t i = 0; i < u.params.size(); ++i) {
      const int64_t a = u.offsets[i], n = sd.at(u.param_names[i]).numel(), b = a + n;
      const int64_t s = std::max(a, lo), e = std::min(b, hi);
      if (s >= e) continue;
      auto src = sd.at(u.param_names[i]).reshape({-1}).to(device_, torch::kFloat32);
      u.shard.narrow(0, s - lo, e - s).copy_(src.narrow(0, s - a, e - s));
    }
  }
  for (auto& b : module_->named_buffers()) {
    auto it = sd.find(b.key());
    if (it != sd.end()) b.value().copy_(it->second);
  }
  if (gathered_ || keep_params_) {
    for (auto& u : units_)
      if (u.full.defined()) gather_unit(u, /*force=*/true);
  }
}

void ShardedModule::load_shard(size_t i, const torch::Tensor& values) {
  TORCH_CHECK(i < units_.size() && values.numel() == units_[i].shard_numel, "load_shard: unit ",
              i, " wants ", i < units_.size() ? units_[i].shard_numel : -1, " values, got ",
              values.numel());
  torch::NoGradGuard ng;
  units_[i].shard.copy_(values.reshape({-1}));
}

void ShardedModule::finish_load() {
  zero_grad();
  reshard();
  after_step();
}

std::vector<std::string> ShardedModule::nonfinite_grad_params(size_t max) const {
  std::vector<std::string> names;
  const int64_t r = shard_->rank();
  for (const auto& u : units_) {
    if (!u.grad.defined()) continue;
    auto bad = (~torch::isfinite(u.grad)).nonzero().flatten().cpu();
    auto a = bad.accessor<int64_t, 1>();
    for (int64_t j = 0; j < bad.numel() && names.size() < max; ++j) {
      const int64_t off = r * u.shard_numel + a[j];
      for (size_t i = 0; i < u.param_names.size(); ++i) {
        const int64_t n = numel_of(u.shapes[i]);
        if (off >= u.offsets[i] && off < u.offsets[i] + n &&
            std::find(names.begin(), names.end(), u.param_names[i]) == names.end())
          names.push_back(u.param_names[i]);
      }
    }
  }
  return names;
}

MemoryBytes ShardedModule::memory_at_rest(int64_t optimizer_bytes) const {
  MemoryBytes m;
  const int S = shard_->size();
  for (const auto& u : units_) {
    m.params += u.shard.numel() * u.shard.element_size();
    const bool alias = S == 1 && (compute_dtype_ == torch::kFloat32 || !opts_.trainable);
    if (keep_params_ && !alias) m.params += u.numel * c10::elementSize(compute_dtype_);
    if (u.grad.defined()) m.grads += u.grad.numel() * 4;
  }
  m.optimizer = optimizer_bytes;
  return m;
}

}  // namespace causvid::trainer
