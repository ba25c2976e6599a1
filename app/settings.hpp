// What each part is given, made from the one config: every default lives in config.hpp, and
// the parts' settings structs carry none of their own.
#pragma once

#include "app/config.hpp"
#include "lifecycle/coordinator.hpp"
#include "net/http.hpp"
#include "stream/stream_hub.hpp"
#include "tasks/store.hpp"
#include "tasks/task_kind.hpp"

namespace quiesce::app {

lifecycle::drain_settings drain_settings_of(const config& c);
net::http_limits http_limits_of(const config& c);
// Also names the pod and its namespace from KUBE_POD_NAME / KUBE_POD_NAMESPACE (the hello frame).
stream::stream_settings stream_settings_of(const config& c);
tasks::kind_settings kind_settings_of(const config& c);
command::output_limits output_limits_of(const config& c);
// The operator's command kinds (--kinds; none without it): throws std::invalid_argument with the
// reason, which stops the start-up with exit 64.
std::vector<command::kind_spec> command_kinds_of(const config& c);
// The built-in kinds and `commands`.
tasks::kind_registry kinds_of(const config& c, const std::vector<command::kind_spec>& commands);
tasks::service_settings service_settings_of(const config& c);
tasks::journal_settings journal_settings_of(const config& c, std::string owner);
tasks::pg::shared_settings shared_settings_of(const config& c);
// Which store, and the settings of each.
tasks::store_settings store_settings_of(const config& c);

// The pod's name from KUBE_POD_NAME (the downward API), or `fallback` outside Kubernetes.
std::string pod_name(const char* fallback);

}  // namespace quiesce::app
