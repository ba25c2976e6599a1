#include "tasks/local_store.hpp"

namespace quiesce::tasks {
namespace {

// sqlite_journal is neither copied nor moved: made in place, in the member.
std::optional<sqlite_journal> open_journal(const store_settings& s) {
  if (s.kind != store_kind::sqlite) return std::nullopt;
  return std::optional<sqlite_journal>(std::in_place, s.journal);
}

stored_state load(std::optional<sqlite_journal>& journal) {
  if (journal) return journal->load();
  stored_state fresh;
  fresh.epoch = new_task_id();  // nothing survives this process
  return fresh;
}

}  // namespace

local_store::local_store(const store_settings& s, kind_registry kinds,
                         boost::asio::thread_pool& cpu)
    : journal_(open_journal(s)),
      opened_(load(journal_)),
      records_(s.task_retention),
      bus_(opened_.epoch, s.event_retention, opened_.last_seq, std::move(opened_.events)),
      writer_(journal_ ? &*journal_ : nullptr,
              [this](const std::vector<event_ptr>& events, std::uint64_t settled) {
                bus_.deliver(events, settled);
              }),
      service_(s.local, std::move(kinds), records_, bus_, cpu) {
  if (journal_) {
    bus_.attach(*journal_);
    service_.watch_store([&j = *journal_] { return j.healthy(); });
  }
  // What an earlier process left unfinished runs again.
  std::vector<task_record> unfinished;
  for (auto& t : opened_.tasks) {
    records_.insert(t);
    if (!is_final(t.status)) unfinished.push_back(std::move(t));
  }
  opened_.tasks.clear();
  service_.recover(unfinished);
}

void local_store::start(const lifecycle::executor_source& strands, lifecycle::task_group& workers,
                        lifecycle::task_group&) {
  service_.start(strands, workers);
}

std::string local_store::name() const { return journal_ ? journal_->file().string() : "memory"; }

}  // namespace quiesce::tasks
