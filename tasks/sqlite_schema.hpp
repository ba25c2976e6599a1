// The journal's database file: opening it with the settings durability needs, checking it, and
// migrating its schema.
#pragma once

#include <sqlite3.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace quiesce::tasks::sqlite {

// Opens `file` (created if missing) locked for this process, in WAL mode with synchronous=FULL,
// checked and migrated to the current schema; records `owner` as the process that holds it.
// Throws failure (with the handle closed) if the file cannot serve as the journal.
sqlite3* open_journal(const std::filesystem::path& file, std::string_view owner);

std::optional<std::string> meta(sqlite3* db, const char* key);
void set_meta(sqlite3* db, const char* key, std::string_view value);

}  // namespace quiesce::tasks::sqlite
