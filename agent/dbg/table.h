// Column-aligned tables as cilium-dbg prints them; a cell may span several lines (labels).
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace cilium::dbg {

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  // A row; a cell containing '\n' continues on the following lines in its column.
  void add(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  bool empty() const { return rows_.empty(); }
  // Columns are separated by three spaces; trailing spaces are trimmed.
  void print(std::ostream& out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace cilium::dbg
