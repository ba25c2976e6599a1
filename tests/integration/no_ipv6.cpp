// LD_PRELOAD shim for test_addresses: socket(AF_INET6, ...) fails with EAFNOSUPPORT, as it does
// on a kernel booted with ipv6.disable=1 (some hardened and managed Kubernetes nodes).
#include <dlfcn.h>
#include <sys/socket.h>

#include <cerrno>

extern "C" int socket(int domain, int type, int protocol) {
  using socket_fn = int (*)(int, int, int);
  static auto* real = reinterpret_cast<socket_fn>(dlsym(RTLD_NEXT, "socket"));
  if (domain == AF_INET6) {
    errno = EAFNOSUPPORT;
    return -1;
  }
  return real(domain, type, protocol);
}
