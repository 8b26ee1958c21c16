// Checkpoints and weight files: .npz archives that numpy.load opens.
//
//   checkpoint (save_checkpoint)             weights (save_weights)
//     conv1.w.npy conv1.b.npy ...            conv1.w.npy conv1.b.npy ...
//     sgd.momentum.conv1.w.npy ...           meta.json
//     (or adam.m.* adam.v.*)
//     metrics.npy   (rows, 8) float64, the metrics.csv history (train/metrics.hpp)
//     meta.json     format, version, dtype, the model (source and spec text), every parameter's
//                   name and shape, the step, the epoch, the recipe (data, batch, shards,
//                   seed, optimizer and its hyper-parameters), the optimizer's step count, the
//                   state of the data-order generator, elapsed seconds, and a checksum
//
//   >>> z = np.load("checkpoint.npz"); z["conv1.w"]; json.loads(z["meta.json"])
//
// Arrays are in the training precision (float32 or float64). The checksum is the CRC-32 of
// every array member (name, then its .npy bytes, in name order) and of meta.json without the
// checksum field (its canonical JSON text), so an edited or mixed-up archive is refused even
// where each zip member's own CRC-32 (checked by libzip) still holds.
//
// Resuming restores the parameters, the optimizer state and the step; the position in the
// data follows from the step (train/trainer.hpp), and the data-order generator's state is
// regenerated and compared. A checkpoint that is truncated, corrupted, of another format or
// version, or whose parameters do not match the model is refused with one line naming the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "tapegrad/io/npz.hpp"
#include "tapegrad/net/params.hpp"
#include "tapegrad/train/metrics.hpp"
#include "tapegrad/train/optimizer.hpp"
#include "tapegrad/train/trainer.hpp"

namespace tapegrad::train {

// What must match for a resumed run to continue the same computation.
struct Recipe {
  std::string model_source;  // "lenet5" or the spec file's path (for messages)
  std::string spec_text;     // the network, exactly
  std::string dtype;         // float | double
  std::string data;          // "synthetic" | "fashion-mnist"
  index_t train_size = 0;    // samples of the training set used
  index_t batch = 0, shards = 1;
  std::uint64_t seed = 1;
  OptimConfig optim;
};

struct Checkpoint {
  Recipe recipe;
  index_t step = 0;
  std::int64_t optimizer_steps = 0;
  std::string data_rng_state;
  double seconds = 0;
  MetricsLog metrics;
  io::Npz npz;
  std::string source;  // the file, quoted, for messages
};

template <class T>
void save_checkpoint(const std::filesystem::path& path, Trainer<T>& trainer, const Recipe& recipe,
                     const MetricsLog& metrics, double seconds);

// Reads and verifies format, version and checksum (not yet the model: see restore).
Checkpoint read_checkpoint(const std::filesystem::path& path);

// Puts a checkpoint's parameters, optimizer state and step into a trainer built from the
// same recipe; refuses parameters that differ from the model's in name or shape.
template <class T>
void restore(Trainer<T>& trainer, const Checkpoint& ck);

// The final weights, with a small meta.json (format, dtype, model, step).
template <class T>
void save_weights(const std::filesystem::path& path, const ParamSet<T>& params,
                  const Recipe& recipe, index_t step);

// Initial values for `spec`'s parameters from an .npz: a tapegrad checkpoint or weight file,
// or arrays exported from PyTorch. Names are tapegrad's (conv1.w, conv1.b, fc1.w, ...); a
// PyTorch state_dict's "<module>.weight" / "<module>.bias" are read as "<module>.w" /
// "<module>.b". Every parameter must be present with its exact shape (PyTorch's layouts are
// tapegrad's); float64 arrays are rounded once to float for float training. Arrays that are
// no parameter of the model are refused (a wrong name mapping), except a checkpoint's optimizer
// state and metrics.
template <class T>
ParamSet<T> load_init(const std::filesystem::path& path, const NetSpec& spec);

}  // namespace tapegrad::train
