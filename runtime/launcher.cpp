// troupe: a static front door that blocks SIGINT, SIGTERM and SIGHUP in its
// first instructions and then becomes troupe-main (beside it), which
// inherits the blocked mask across exec. troupe-main loads some 40 shared
// libraries before any of its own code runs: a SIGTERM in those
// milliseconds used to kill it by the signal instead of becoming a cancel
// (exit 130). Static: no dynamic loader runs before the mask is set.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGHUP);
  sigprocmask(SIG_BLOCK, &stop, nullptr);
  (void) argc;
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 16);
  if (n <= 0) {
    fprintf(stderr, "troupe: cannot find its own location: %s\n", strerror(errno));
    return 4;
  }
  self[n] = '\0';
  char* slash = strrchr(self, '/');
  strcpy(slash + 1, "troupe-main");
  execv(self, argv);
  fprintf(stderr, "troupe: cannot start %s: %s\n", self, strerror(errno));
  return 4;
}
