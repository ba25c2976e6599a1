// A mutex that spins briefly before it sleeps (glibc's PTHREAD_MUTEX_ADAPTIVE_NP), for locks
// held a microsecond or two by the network threads. With std::mutex a thread that found such a
// lock taken went to sleep in the kernel and had to be woken by the holder: two system calls and
// two context switches for a wait shorter than either.
#pragma once

#include <pthread.h>

#include <mutex>

namespace quiesce::support {

#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP

class adaptive_mutex {
 public:
  adaptive_mutex() = default;
  ~adaptive_mutex() { pthread_mutex_destroy(&m_); }
  adaptive_mutex(const adaptive_mutex&) = delete;
  adaptive_mutex& operator=(const adaptive_mutex&) = delete;

  void lock() { pthread_mutex_lock(&m_); }
  bool try_lock() { return pthread_mutex_trylock(&m_) == 0; }
  void unlock() { pthread_mutex_unlock(&m_); }

 private:
  pthread_mutex_t m_ = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
};

#else

// A C library without glibc's adaptive kind (musl, for one): a plain mutex, the same locking
// without the spin.
class adaptive_mutex : public std::mutex {};

#endif

}  // namespace quiesce::support
