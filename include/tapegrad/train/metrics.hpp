// The metrics of a training run: one row per logged interval of training steps and one per
// evaluation of the test set, written as metrics.csv and kept in checkpoints (as a float64
// matrix, so that a resumed run writes the whole history).
//
//   split,epoch,step,images,loss,accuracy,lr,seconds
//   train,1,50,3200,1.0731,0.6123,0.01,0.84        mean loss / accuracy over steps 1..50
//   test,1,938,10000,0.4312,0.8452,0.01,15.2       after epoch 1, the whole test set
//
// epoch is 1-based here (the epoch the interval ended in); seconds is the wall time since the
// start of training (a resumed run continues the count).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "tapegrad/errors.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::train {

struct MetricsRow {
  bool test = false;  // false: training steps; true: an evaluation of the test set
  index_t epoch = 0, step = 0, images = 0;
  double loss = 0, accuracy = 0, lr = 0, seconds = 0;
};

class MetricsLog {
 public:
  void add(const MetricsRow& r) { rows_.push_back(r); }
  const std::vector<MetricsRow>& rows() const { return rows_; }

  std::string csv() const {
    std::string s = "split,epoch,step,images,loss,accuracy,lr,seconds\n";
    char buf[256];
    for (const MetricsRow& r : rows_) {
      std::snprintf(buf, sizeof buf, "%s,%lld,%lld,%lld,%.9g,%.6g,%.6g,%.3f\n",
                    r.test ? "test" : "train", static_cast<long long>(r.epoch),
                    static_cast<long long>(r.step), static_cast<long long>(r.images), r.loss,
                    r.accuracy, r.lr, r.seconds);
      s += buf;
    }
    return s;
  }

  // As a (rows, 8) float64 matrix in the csv's column order (split: 0 train, 1 test).
  Tensor<double> matrix() const {
    Tensor<double> m(Shape{static_cast<index_t>(rows_.size()), 8});
    for (std::size_t i = 0; i < rows_.size(); ++i) {
      const MetricsRow& r = rows_[i];
      const double v[8] = {r.test ? 1.0 : 0.0, double(r.epoch), double(r.step), double(r.images),
                           r.loss, r.accuracy, r.lr, r.seconds};
      for (int j = 0; j < 8; ++j) m(static_cast<index_t>(i), j) = v[j];
    }
    return m;
  }
  static MetricsLog from_matrix(const Tensor<double>& m, std::string_view name) {
    check_arg(m.rank() == 2 && m.size(1) == 8, name, "metrics must be a (rows, 8) matrix, got ",
              m.shape().str());
    MetricsLog log;
    for (index_t i = 0; i < m.size(0); ++i)
      log.add({m(i, 0) != 0, static_cast<index_t>(m(i, 1)), static_cast<index_t>(m(i, 2)),
               static_cast<index_t>(m(i, 3)), m(i, 4), m(i, 5), m(i, 6), m(i, 7)});
    return log;
  }

 private:
  std::vector<MetricsRow> rows_;
};

}  // namespace tapegrad::train
