// Thin RAII over SQLite's C API for the journal: errors as exceptions, one prepared statement.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace quiesce::tasks::sqlite {

// A failed call; what() is SQLite's message.
struct failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string describe(sqlite3* db, int rc);
void check(sqlite3* db, int rc);  // throws failure unless rc is OK, ROW or DONE
void exec(sqlite3* db, const char* sql);
void rollback(sqlite3* db);  // if a transaction is open; never throws

// One prepared statement; binds by position, steps, finalises on destruction.
class statement {
 public:
  statement(sqlite3* db, const char* sql) : db_(db) {
    check(db, sqlite3_prepare_v2(db, sql, -1, &s_, nullptr));
  }
  ~statement() { sqlite3_finalize(s_); }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  void bind(int i, std::int64_t v) { check(db_, sqlite3_bind_int64(s_, i, v)); }
  void bind(int i, double v) { check(db_, sqlite3_bind_double(s_, i, v)); }
  // Not copied (SQLITE_STATIC): the text must stay alive until run() or the last step().
  void bind(int i, std::string_view v) {
    check(db_, sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
  }
  void bind_null(int i) { check(db_, sqlite3_bind_null(s_, i)); }
  template <typename T>
  void bind(int i, const std::optional<T>& v) {
    if (v)
      bind(i, *v);
    else
      bind_null(i);
  }
  bool step() {  // true: a row
    int rc = sqlite3_step(s_);
    check(db_, rc);
    return rc == SQLITE_ROW;
  }
  // Steps once and resets, failed or not: a prepared statement is used again next commit.
  // Its text bindings are cleared too: they point at the caller's strings.
  void run() {
    int rc = sqlite3_step(s_);
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
    check(db_, rc);
  }
  std::int64_t integer(int c) const { return sqlite3_column_int64(s_, c); }
  double real(int c) const { return sqlite3_column_double(s_, c); }
  bool null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
  std::string text(int c) const {
    const auto* p = sqlite3_column_text(s_, c);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<std::size_t>(sqlite3_column_bytes(s_, c)))
             : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

}  // namespace quiesce::tasks::sqlite
