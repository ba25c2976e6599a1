// What a child writes, made safe to keep: lines cut at a limit, a bounded tail, and text that is
// valid UTF-8 (a record and a log line are JSON, and a child may write any bytes).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace quiesce::command {

// Splits a byte stream into lines. A line longer than `max_line` is handed over once, cut at
// `max_line`, with `whole` false; the rest of it is skipped up to its newline.
class line_splitter {
 public:
  explicit line_splitter(std::size_t max_line) : max_(max_line) {}

  template <typename OnLine>  // void(std::string_view line, bool whole)
  void feed(std::string_view chunk, OnLine on_line) {
    while (!chunk.empty()) {
      auto nl = chunk.find('\n');
      auto piece = chunk.substr(0, nl);
      take(piece, on_line);
      if (nl == std::string_view::npos) return;
      end_line(on_line);
      chunk.remove_prefix(nl + 1);
    }
  }
  // The last line, if the stream ended without a newline.
  template <typename OnLine>
  void finish(OnLine on_line) {
    if (!partial_.empty() || skipping_) end_line(on_line);
  }

 private:
  template <typename OnLine>
  void take(std::string_view piece, OnLine& on_line) {
    if (skipping_) return;
    auto room = max_ - partial_.size();
    partial_.append(piece.substr(0, room));
    if (piece.size() > room) {
      on_line(std::string_view(partial_), false);
      skipping_ = true;
    }
  }
  template <typename OnLine>
  void end_line(OnLine& on_line) {
    if (!skipping_) on_line(std::string_view(partial_), true);
    partial_.clear();
    skipping_ = false;
  }

  std::size_t max_;
  std::string partial_;
  bool skipping_ = false;
};

// The last `limit` bytes written to it.
class output_tail {
 public:
  explicit output_tail(std::size_t limit) : limit_(limit) {}
  void append(std::string_view bytes);
  // As valid UTF-8, starting at a line's start where one is in it.
  std::string text() const;

 private:
  std::size_t limit_;
  std::string kept_;  // at most 2 x limit_: trimmed in halves, not per byte
};

// `bytes` with every invalid UTF-8 sequence replaced by U+FFFD.
std::string valid_utf8(std::string_view bytes);

}  // namespace quiesce::command
