// Table layout.
#include "agent/dbg/table.h"

#include <algorithm>
#include <sstream>

namespace cilium::dbg {
namespace {

std::vector<std::string> lines(const std::string& cell) {
  std::vector<std::string> out;
  std::stringstream ss(cell);
  std::string line;
  while (std::getline(ss, line)) out.push_back(line);
  if (out.empty()) out.emplace_back();
  return out;
}

}  // namespace

void Table::print(std::ostream& out) const {
  size_t ncol = headers_.size();
  std::vector<size_t> width(ncol, 0);
  for (size_t c = 0; c < ncol; c++) width[c] = headers_[c].size();
  for (const auto& row : rows_)
    for (size_t c = 0; c < ncol && c < row.size(); c++)
      for (const auto& l : lines(row[c])) width[c] = std::max(width[c], l.size());

  auto emit = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t c = 0; c < ncol; c++) {
      std::string cell = c < cells.size() ? cells[c] : "";
      line += cell;
      if (c + 1 < ncol) line += std::string(width[c] - cell.size() + 3, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  };
  emit(headers_);
  for (const auto& row : rows_) {
    std::vector<std::vector<std::string>> split;
    size_t height = 1;
    for (size_t c = 0; c < ncol; c++) {
      split.push_back(lines(c < row.size() ? row[c] : ""));
      height = std::max(height, split.back().size());
    }
    for (size_t h = 0; h < height; h++) {
      std::vector<std::string> cells;
      for (size_t c = 0; c < ncol; c++) cells.push_back(h < split[c].size() ? split[c][h] : "");
      emit(cells);
    }
  }
}

}  // namespace cilium::dbg
