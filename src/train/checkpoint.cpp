// Checkpoints and weight files; see include/tapegrad/train/checkpoint.hpp.
#include "tapegrad/train/checkpoint.hpp"

#include <zlib.h>

#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <type_traits>

#include "tapegrad/errors.hpp"
#include "tapegrad/io/npy.hpp"

namespace tapegrad::train {

using nlohmann::json;

namespace {

constexpr const char* checkpoint_format = "tapegrad checkpoint";
constexpr const char* weights_format = "tapegrad weights";
constexpr int format_version = 1;

template <class T>
const char* dtype_of() {
  return std::is_same_v<T, float> ? "float" : "double";
}

template <class T>
std::string npy_of(const Tensor<T>& t) {
  return io::encode_npy(t.shape(), t.vec());
}

json recipe_json(const Recipe& r) {
  return json{{"model", r.model_source},
              {"spec", r.spec_text},
              {"dtype", r.dtype},
              {"data", r.data},
              {"train_size", r.train_size},
              {"batch", r.batch},
              {"shards", r.shards},
              {"seed", r.seed},
              {"optimizer",
               {{"name", r.optim.name},
                {"lr", r.optim.lr},
                {"momentum", r.optim.momentum},
                {"weight_decay", r.optim.weight_decay},
                {"beta1", r.optim.beta1},
                {"beta2", r.optim.beta2},
                {"eps", r.optim.eps},
                {"schedule", r.optim.schedule},
                {"schedule_steps", r.optim.schedule_steps}}}};
}

Recipe recipe_from(const json& j) {
  Recipe r;
  r.model_source = j.at("model").get<std::string>();
  r.spec_text = j.at("spec").get<std::string>();
  r.dtype = j.at("dtype").get<std::string>();
  r.data = j.at("data").get<std::string>();
  r.train_size = j.at("train_size").get<index_t>();
  r.batch = j.at("batch").get<index_t>();
  r.shards = j.at("shards").get<index_t>();
  r.seed = j.at("seed").get<std::uint64_t>();
  const json& o = j.at("optimizer");
  r.optim.name = o.at("name").get<std::string>();
  r.optim.lr = o.at("lr").get<double>();
  r.optim.momentum = o.at("momentum").get<double>();
  r.optim.weight_decay = o.at("weight_decay").get<double>();
  r.optim.beta1 = o.at("beta1").get<double>();
  r.optim.beta2 = o.at("beta2").get<double>();
  r.optim.eps = o.at("eps").get<double>();
  r.optim.schedule = o.at("schedule").get<std::string>();
  r.optim.schedule_steps = o.at("schedule_steps").get<std::int64_t>();
  return r;
}

// CRC-32 of every array (name, NUL, .npy bytes; name order) and of the meta without its
// checksum field.
std::string checksum(const std::map<std::string, std::string>& raw_arrays, json meta) {
  meta.erase("checksum");
  uLong crc = crc32(0L, Z_NULL, 0);
  auto feed = [&](const std::string& s) {
    for (std::size_t off = 0; off < s.size(); off += 1u << 30) {
      const auto n = static_cast<uInt>(std::min<std::size_t>(s.size() - off, 1u << 30));
      crc = crc32(crc, reinterpret_cast<const Bytef*>(s.data() + off), n);
    }
  };
  for (const auto& [name, bytes] : raw_arrays) {  // std::map: name order
    feed(name);
    feed(std::string(1, '\0'));
    feed(bytes);
  }
  feed(meta.dump());
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08lx", static_cast<unsigned long>(crc));
  return std::string("crc32:") + buf;
}

json params_json(const ParamSet<float>* pf, const ParamSet<double>* pd) {
  json a = json::array();
  auto add = [&](const auto& set) {
    for (const auto& p : set) a.push_back({{"name", p.name}, {"shape", p.value.shape().dims()}});
  };
  if (pf) add(*pf);
  if (pd) add(*pd);
  return a;
}

template <class T>
const ParamSet<float>* as_float(const ParamSet<T>& p) {
  if constexpr (std::is_same_v<T, float>) return &p;
  return nullptr;
}
template <class T>
const ParamSet<double>* as_double(const ParamSet<T>& p) {
  if constexpr (std::is_same_v<T, double>) return &p;
  return nullptr;
}

// The array `name` of the archive as Tensor<T>; float64 into float rounds once when `round`.
template <class T>
Tensor<T> array_as(const io::NpyArray& a, const std::string& where, bool round) {
  if constexpr (std::is_same_v<T, float>)
    if (round && a.dtype == io::NpyDtype::f8) return io::to_tensor<double>(a, where).template cast<float>();
  return io::to_tensor<T>(a, where);
}

}  // namespace

template <class T>
void save_checkpoint(const std::filesystem::path& path, Trainer<T>& trainer, const Recipe& recipe,
                     const MetricsLog& metrics, double seconds) {
  io::NpzWriter w;
  std::map<std::string, std::string> raw;
  auto add = [&](const std::string& name, std::string npy) {
    raw.emplace(name, npy);
    w.add_array(name, std::move(npy));
  };
  for (const auto& p : trainer.params()) add(p.name, npy_of(p.value));
  for (const auto& s : trainer.optimizer().state()) add(s.name, npy_of(*s.tensor));
  add("metrics", npy_of(metrics.matrix()));
  json meta{{"format", checkpoint_format},
            {"version", format_version},
            {"dtype", dtype_of<T>()},
            {"params", params_json(as_float(trainer.params()), as_double(trainer.params()))},
            {"step", trainer.steps_done()},
            {"epoch", trainer.epoch()},
            {"steps_per_epoch", trainer.steps_per_epoch()},
            {"optimizer_steps", trainer.optimizer().steps()},
            {"recipe", recipe_json(recipe)},
            {"rng", {{"data_order", trainer.data_rng_state()},
                     {"note", "the data order of epoch e is drawn by Rng(derive(seed, e)); "
                              "parameters were initialized from the seed and are stored here"}}},
            {"seconds", seconds}};
  meta["checksum"] = checksum(raw, meta);
  w.add_file("meta.json", meta.dump(1));
  w.write(path);
}

Checkpoint read_checkpoint(const std::filesystem::path& path) {
  Checkpoint ck;
  ck.source = quote(path.string());
  ck.npz = io::read_npz(path);
  const auto it = ck.npz.files.find("meta.json");
  if (it == ck.npz.files.end())
    throw std::invalid_argument(ck.source + ": not a tapegrad checkpoint (no meta.json member)");
  json meta;
  try {
    meta = json::parse(it->second);
    if (meta.value("format", "") != checkpoint_format)
      throw std::invalid_argument(ck.source + ": not a tapegrad checkpoint (format " +
                                  quote(meta.value("format", "")) + ")");
    if (meta.at("version").get<int>() != format_version)
      throw std::invalid_argument(ck.source + ": checkpoint version " +
                                  std::to_string(meta.at("version").get<int>()) +
                                  " is not supported (this tapegrad reads version " +
                                  std::to_string(format_version) + ")");
    if (meta.at("checksum").get<std::string>() != checksum(ck.npz.raw, meta))
      throw std::invalid_argument(ck.source +
                                  ": checksum mismatch (the checkpoint was altered or damaged)");
    ck.recipe = recipe_from(meta.at("recipe"));
    if (meta.at("dtype").get<std::string>() != ck.recipe.dtype)
      throw std::invalid_argument(ck.source + ": inconsistent dtype in meta.json");
    ck.step = meta.at("step").get<index_t>();
    ck.optimizer_steps = meta.at("optimizer_steps").get<std::int64_t>();
    ck.data_rng_state = meta.at("rng").at("data_order").get<std::string>();
    ck.seconds = meta.at("seconds").get<double>();
  } catch (const json::exception& e) {
    throw std::invalid_argument(ck.source + ": malformed meta.json (" + quote(e.what()) + ")");
  }
  const io::NpyArray* m = ck.npz.find("metrics");
  if (!m) throw std::invalid_argument(ck.source + ": no metrics array");
  ck.metrics = MetricsLog::from_matrix(io::to_tensor<double>(*m, ck.source + ":metrics"), ck.source);
  return ck;
}

template <class T>
void restore(Trainer<T>& trainer, const Checkpoint& ck) {
  check_arg(ck.recipe.dtype == dtype_of<T>(), ck.source, "holds ", ck.recipe.dtype,
            " parameters, this run trains in ", dtype_of<T>());
  ParamSet<T>& params = trainer.params();
  std::set<std::string> expected;
  for (auto& p : params) {
    expected.insert(p.name);
    const io::NpyArray* a = ck.npz.find(p.name);
    check_arg(a != nullptr, ck.source, "is for a different model: it has no ", quote(p.name),
              " (the model ", quote(ck.recipe.model_source), " needs ", p.value.shape(), ")");
    Tensor<T> v = array_as<T>(*a, ck.source + ":" + p.name, false);
    check_arg(v.shape() == p.value.shape(), ck.source, "is for a different model: ",
              quote(p.name), " is ", v.shape(), ", the model needs ", p.value.shape());
    p.value = std::move(v);
  }
  for (auto& s : trainer.optimizer().state()) {
    expected.insert(s.name);
    const io::NpyArray* a = ck.npz.find(s.name);
    check_arg(a != nullptr, ck.source, "has no optimizer state ", quote(s.name), " for ",
              trainer.optimizer().config().name);
    Tensor<T> v = array_as<T>(*a, ck.source + ":" + s.name, false);
    check_arg(v.shape() == s.tensor->shape(), ck.source, "optimizer state ", quote(s.name),
              " is ", v.shape(), ", expected ", s.tensor->shape());
    *s.tensor = std::move(v);
  }
  expected.insert("metrics");
  for (const auto& [name, a] : ck.npz.arrays)
    check_arg(expected.count(name) == 1, ck.source, "is for a different model: it has ",
              quote(name), ", which the model ", quote(ck.recipe.model_source), " does not have");
  trainer.optimizer().set_steps(ck.optimizer_steps);
  trainer.resume_at(ck.step);
  check_arg(trainer.data_rng_state() == ck.data_rng_state, ck.source,
            "the data order does not regenerate (seed or data set differ from the checkpoint's)");
}

template <class T>
void save_weights(const std::filesystem::path& path, const ParamSet<T>& params,
                  const Recipe& recipe, index_t step) {
  io::NpzWriter w;
  for (const auto& p : params) w.add_array(p.name, npy_of(p.value));
  const json meta{{"format", weights_format},
                  {"version", format_version},
                  {"dtype", dtype_of<T>()},
                  {"model", recipe.model_source},
                  {"spec", recipe.spec_text},
                  {"params", params_json(as_float(params), as_double(params))},
                  {"step", step}};
  w.add_file("meta.json", meta.dump(1));
  w.write(path);
}

template <class T>
ParamSet<T> load_init(const std::filesystem::path& path, const NetSpec& spec) {
  const io::Npz z = io::read_npz(path);
  const std::string src = quote(path.string());
  // tapegrad's name for an array name: PyTorch's ".weight"/".bias" suffixes mapped.
  auto ours = [](std::string n) {
    auto ends = [&](const std::string& s) {
      return n.size() > s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0;
    };
    if (ends(".weight")) return n.substr(0, n.size() - 7) + ".w";
    if (ends(".bias")) return n.substr(0, n.size() - 5) + ".b";
    return n;
  };
  std::map<std::string, const io::NpyArray*> by_name;
  for (const auto& [name, a] : z.arrays) {
    const std::string n = ours(name);
    if (name == "metrics" || name.rfind("sgd.", 0) == 0 || name.rfind("adam.", 0) == 0) continue;
    check_arg(by_name.emplace(n, &a).second, src, "has two arrays for ", quote(n));
  }
  std::vector<Tensor<T>> values;
  for (const ParamSpec& p : spec.params) {
    const auto it = by_name.find(p.name);
    check_arg(it != by_name.end(), src, "has no array for ", quote(p.name), " ",
              p.shape, " (names: conv1.w or PyTorch's conv1.weight, ...)");
    Tensor<T> v = array_as<T>(*it->second, path.string() + ":" + p.name, true);
    check_arg(v.shape() == p.shape, src, quote(p.name), " is ", v.shape(),
              ", the model needs ", p.shape);
    values.push_back(std::move(v));
    by_name.erase(it);
  }
  if (!by_name.empty())
    fail_arg(src, "array ", quote(by_name.begin()->first),
             " is not a parameter of the model (", by_name.size(),
             " unmatched; expected only ", spec.params.size(), " parameters)");
  return make_params(spec, std::move(values));
}

template void save_checkpoint<float>(const std::filesystem::path&, Trainer<float>&, const Recipe&,
                                     const MetricsLog&, double);
template void save_checkpoint<double>(const std::filesystem::path&, Trainer<double>&,
                                      const Recipe&, const MetricsLog&, double);
template void restore<float>(Trainer<float>&, const Checkpoint&);
template void restore<double>(Trainer<double>&, const Checkpoint&);
template void save_weights<float>(const std::filesystem::path&, const ParamSet<float>&,
                                  const Recipe&, index_t);
template void save_weights<double>(const std::filesystem::path&, const ParamSet<double>&,
                                   const Recipe&, index_t);
template ParamSet<float> load_init<float>(const std::filesystem::path&, const NetSpec&);
template ParamSet<double> load_init<double>(const std::filesystem::path&, const NetSpec&);

}  // namespace tapegrad::train
