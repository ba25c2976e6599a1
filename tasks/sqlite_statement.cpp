#include "tasks/sqlite_statement.hpp"

namespace quiesce::tasks::sqlite {

std::string describe(sqlite3* db, int rc) {
  std::string m = sqlite3_errstr(rc);
  if (db && sqlite3_errcode(db) == rc) m = sqlite3_errmsg(db);
  if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
    m += " (another process holds this data directory)";
  return m;
}

void check(sqlite3* db, int rc) {
  if (rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) throw failure(describe(db, rc));
}

void exec(sqlite3* db, const char* sql) {
  check(db, sqlite3_exec(db, sql, nullptr, nullptr, nullptr));
}

void rollback(sqlite3* db) {
  if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
}

}  // namespace quiesce::tasks::sqlite
