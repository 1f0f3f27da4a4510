/*
 * freight-shim --serve: the launcher. A ShimRuntime starts one and has it fork a shim per attempt,
 * so an attempt costs a fork of this small process instead of a posix_spawn + exec of the shim
 * (on this VM the exec alone costs ~0.65 ms of CPU: libc's start-up CPUID probes trap to the
 * hypervisor). Each shim forked here is exactly the shim of shim.c from supervise() on.
 * See docs/runtime.md, "The launcher".
 *
 * The runtime spawns it with descriptor 3 = its end of a SOCK_SEQPACKET socketpair. It forks at
 * once (the first process exits and the runtime reaps it; init adopts the launcher, which so never
 * lingers as the runtime's zombie), starts a session of its own and says HELLO. Then per message
 * (a batch of requests sent before any reply is read is served in one wake, in order):
 *
 *   request  runtime → launcher: struct launch_request, then NUL-terminated strings
 *            RECORD_DIR LOG CWD RLIMITS PROCS... STATS... ARGV... ENV...;
 *            SCM_RIGHTS: the slot's claim (cgroups only)
 *   the launcher forks; the child is the attempt's shim: own session and signal dispositions;
 *            mkdir RECORD_DIR, open + flock it (descriptor 3); LOG opened O_APPEND (parent
 *            directories created) as stdout and stderr; the slot's claim as descriptor 4
 *   reply    shim → runtime: STARTED with its pid and start time (field 22 of /proc/PID/stat) and
 *            SCM_RIGHTS a pidfd on itself; or FAILED with an errno and the path (record dir removed)
 *            Only once its reply is sent does the shim close everything else and fork the job, so
 *            a runtime that gets no reply knows that no job started.
 *   notice   launcher → runtime: DIED with the request's id when a shim dies of a signal. Had it not
 *            replied yet, the runtime stops waiting; otherwise the runtime drops the notice.
 *
 * The launcher reaps its shims (through a signalfd), so none lingers as a zombie; a shim whose
 * launcher died is adopted by init like any orphan and goes on. The launcher exits when the
 * runtime's end of the socket closes (the runtime closed it, or its process died).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim.h"

#define LAUNCH_MAGIC 0x4c524646u /* "FFRL" */
#define LAUNCH_VERSION 1
#define MAX_REQUEST (256 * 1024)
#define MAX_FDS 4
/* the launcher's own descriptors sit here, clear of 0-4 (which a shim rewires) */
#define HIGH_FD 10

enum { STARTED = 0, FAILED = 1, DIED = 2, HELLO = 3 };

struct launch_request {
    uint32_t magic, id, nprocs, nstats, nargs, nenv;
};

struct launch_reply {
    uint32_t id;
    int32_t err; /* FAILED: errno; DIED: the signal */
    int32_t pid;
    uint32_t kind;
    uint64_t start; /* STARTED: clock ticks after boot; HELLO: the protocol version */
};

struct child {
    pid_t pid;
    uint32_t id;
};

extern char **environ;

/* shims not reaped yet, with the request each serves */
static struct child *children;
static size_t nchildren, children_cap;
/* the launcher's descriptors, for a shim to close */
static int sock_fd = -1, signal_fd = -1;

static int send_reply(uint32_t id, uint32_t kind, int err, pid_t pid, uint64_t start, const char *text, int fd,
                      int flags) {
    struct launch_reply reply = {.id = id, .err = err, .pid = pid, .kind = kind, .start = start};
    struct iovec iov[2] = {{&reply, sizeof reply}, {(void *)(text ? text : ""), text ? strlen(text) : 0}};
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
    if (fd >= 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.bytes;
        msg.msg_controllen = sizeof control.bytes;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    ssize_t n;
    do
        n = sendmsg(sock_fd, &msg, MSG_NOSIGNAL | flags);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -1 : 0;
}

/* -- in the shim, before its reply ------------------------------------------------------------- */

static void give_up(uint32_t id, int err, const char *what, const char *made) {
    if (made)
        rmdir(made);
    send_reply(id, FAILED, err, 0, 0, what, -1, 0);
    _exit(SHIM_ABORTED);
}

static int open_log(char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    /* the first log of its directory: create the directory and its parents */
    for (char *slash = strchr(path + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        int rc = mkdir(path, 0777);
        *slash = '/';
        if (rc != 0 && errno != EEXIST)
            return -1;
    }
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

/* field 22 of /proc/self/stat: with the pid, it names this process for good */
static uint64_t own_start_time(void) {
    char buf[1024];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name (field 2) may hold spaces and parentheses */
    for (int field = 3; p && field <= 22; field++) /* p: the space before field 22 */
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

static void close_from_5(int highest) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 5U, ~0U, 0U) == 0)
        return;
#endif
    for (int fd = 5; fd <= highest; fd++) /* every descriptor here is one we know of */
        close(fd);
}

/* The child of a fork for one request: becomes the attempt's shim. Never returns. */
static void launch(char *buf, size_t len, int slot_fd) {
    struct launch_request head;
    memcpy(&head, buf, sizeof head);
    uint32_t id = head.id;
    enter_own_session();

    /* each count is bounded by the message's length, so their sum cannot overflow */
    size_t counts[] = {4, head.nprocs, head.nstats, head.nargs, head.nenv};
    size_t total = 0;
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        if (counts[i] > len)
            give_up(id, EINVAL, "bad request", NULL);
        total += counts[i];
    }
    size_t argv_end = 4 + counts[1] + counts[2] + counts[3];
    char **strings = calloc(total + 2, sizeof *strings); /* + the NULLs ending argv and env */
    if (!strings)
        give_up(id, ENOMEM, "request", NULL);
    char *p = buf + sizeof head, *end = buf + len;
    for (size_t i = 0; i < total; i++) {
        char *nul = p < end ? memchr(p, '\0', (size_t)(end - p)) : NULL;
        if (!nul)
            give_up(id, EINVAL, "bad request", NULL);
        strings[i < argv_end ? i : i + 1] = p;
        p = nul + 1;
    }
    if (p != end || head.nargs == 0) /* a NUL inside a string makes one string too many */
        give_up(id, EINVAL, "embedded null byte", NULL);
    char **procs = strings + 4, **stats = procs + head.nprocs, **command = stats + head.nstats;

    record_dir = strings[0];
    if (mkdir(record_dir, 0777) != 0)
        give_up(id, errno, record_dir, NULL);
    int lock = open(record_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock < 0 || flock(lock, LOCK_EX) != 0)
        give_up(id, errno, record_dir, record_dir);
    int log = open_log(strings[1]);
    if (log < 0)
        give_up(id, errno, strings[1], record_dir);
    /* every source is above 4 (0-4 are the launcher's /dev/null), so no dup2 clobbers another's */
    if (dup2(log, 1) < 0 || dup2(log, 2) < 0 || dup3(lock, 3, O_CLOEXEC) < 0 ||
        (slot_fd >= 0 ? dup3(slot_fd, 4, O_CLOEXEC) < 0 : close(4) != 0))
        give_up(id, errno, "descriptors", record_dir);
    environ = command + head.nargs + 1;

    pid_t self = getpid();
    int pidfd = (int)syscall(SYS_pidfd_open, self, 0); /* -1 before Linux 5.3: the runtime opens one */
    if (send_reply(id, STARTED, 0, self, own_start_time(), NULL, pidfd, 0) != 0) {
        /* the runtime is gone: no one knows of this attempt, so its job must not run */
        rmdir(record_dir);
        _exit(SHIM_ABORTED);
    }
    int highest = sock_fd;
    int mine[] = {signal_fd, slot_fd, lock, log, pidfd};
    for (size_t i = 0; i < sizeof mine / sizeof mine[0]; i++)
        highest = mine[i] > highest ? mine[i] : highest;
    close_from_5(highest);
    struct job job = {
        .cwd = strings[2],
        .rlimits = strings[3],
        .nprocs = (int)head.nprocs,
        .procs = procs,
        .nstats = (int)head.nstats,
        .stats = stats,
        .command = command,
    };
    _exit(supervise(&job));
}

/* -- the launcher ------------------------------------------------------------------------------ */

static void remember(pid_t pid, uint32_t id) {
    if (nchildren == children_cap) {
        size_t cap = children_cap ? children_cap * 2 : 64;
        struct child *grown = realloc(children, cap * sizeof *grown);
        if (!grown)
            return; /* untracked: a signal death before its reply would go unreported */
        children = grown;
        children_cap = cap;
    }
    children[nchildren++] = (struct child){pid, id};
}

static int forget(pid_t pid, uint32_t *id) {
    for (size_t i = nchildren; i-- > 0;) {
        if (children[i].pid == pid) {
            *id = children[i].id;
            children[i] = children[--nchildren];
            return 1;
        }
    }
    return 0;
}

static void reap(void) {
    struct signalfd_siginfo info;
    while (read(signal_fd, &info, sizeof info) == (ssize_t)sizeof info) {
    }
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        uint32_t id;
        if (forget(pid, &id) && WIFSIGNALED(status))
            send_reply(id, DIED, WTERMSIG(status), pid, 0, NULL, -1, MSG_DONTWAIT);
    }
}

/* One request: fork its shim. Returns 0 once the runtime has closed its end. */
/* 2: served a request; 1: none waiting (or interrupted); 0: the runtime's end closed */
static int serve_one(char *buf) {
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(MAX_FDS * sizeof(int))];
    } control;
    struct iovec iov = {buf, MAX_REQUEST};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes,
                         .msg_controllen = sizeof control.bytes};
    ssize_t n = recvmsg(sock_fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n == 0)
        return 0;
    if (n < 0)
        return errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK;
    int slot_fd = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        int fds[MAX_FDS];
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        count = count > MAX_FDS ? MAX_FDS : count;
        memcpy(fds, CMSG_DATA(c), count * sizeof(int));
        for (size_t i = 0; i < count; i++) {
            if (slot_fd < 0)
                slot_fd = fds[i];
            else
                close(fds[i]);
        }
    }
    struct launch_request head = {0};
    if ((size_t)n >= sizeof head)
        memcpy(&head, buf, sizeof head);
    if ((size_t)n < sizeof head || head.magic != LAUNCH_MAGIC || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        send_reply(head.id, FAILED, (msg.msg_flags & MSG_TRUNC) ? EMSGSIZE : EINVAL, 0, 0, "bad request", -1, 0);
    } else {
        pid_t pid = fork();
        if (pid == 0)
            launch(buf, (size_t)n, slot_fd);
        if (pid < 0)
            send_reply(head.id, FAILED, errno, 0, 0, "fork", -1, 0);
        else
            remember(pid, head.id);
    }
    if (slot_fd >= 0)
        close(slot_fd);
    return 2;
}

int serve(void) {
    if (fcntl(3, F_GETFD) < 0) {
        dprintf(2, "freight-shim --serve: descriptor 3 must be the runtime's socket\n");
        return SHIM_FAILED;
    }
#ifdef SYS_close_range
    syscall(SYS_close_range, 4U, ~0U, 0U); /* nothing of the runtime's but the socket */
#endif
    sock_fd = fcntl(3, F_DUPFD_CLOEXEC, HIGH_FD);
    int null = open("/dev/null", O_RDONLY); /* not close-on-exec: the jobs' stdin */
    if (sock_fd < 0 || null < 0)
        return SHIM_FAILED;
    /* 0-4 held by /dev/null: whatever is received or opened per attempt lands above them */
    for (int fd = 0; fd <= 4; fd++)
        if (fd != null && dup2(null, fd) < 0)
            return SHIM_FAILED;
    if (null > 4)
        close(null);
    int ignored[] = {SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        signal(ignored[i], SIG_IGN);

    pid_t first = fork();
    if (first < 0)
        return SHIM_FAILED;
    if (first > 0)
        _exit(0);
    setsid();
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_SETMASK, &chld, NULL); /* the runtime spawned us with every signal blocked */
    int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
    signal_fd = sfd < 0 ? -1 : fcntl(sfd, F_DUPFD_CLOEXEC, HIGH_FD);
    if (sfd >= 0)
        close(sfd);
    char *buf = malloc(MAX_REQUEST);
    if (signal_fd < 0 || !buf || send_reply(0, HELLO, 0, getpid(), LAUNCH_VERSION, NULL, -1, 0) != 0)
        return SHIM_FAILED;

    struct pollfd fds[2] = {{.fd = sock_fd, .events = POLLIN}, {.fd = signal_fd, .events = POLLIN}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return SHIM_FAILED;
        }
        if (fds[1].revents & POLLIN)
            reap();
        if (fds[0].revents) {
            /* a batch (Launcher.start_many) is served in one wake: each request is forked in turn,
               so this fork overlaps the set-up of the shim before it */
            int served;
            while ((served = serve_one(buf)) == 2)
                ;
            if (!served)
                return 0;
        }
    }
}
