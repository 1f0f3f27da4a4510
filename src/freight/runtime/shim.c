/*
 * freight-shim: runs ONE job, waits for it and records how it ended, so no exit is lost while the
 * scheduler is down (the role conmon or containerd-shim play for containers). See docs/runtime.md.
 *
 *   freight-shim RECORD_DIR CWD RLIMITS NPROCS PROCS... NSTATS STATS... COMMAND [ARG...]
 *
 *   RECORD_DIR  existing directory; the shim writes lock, pid and status files into it
 *   CWD         directory to run the command in, or "-"
 *   RLIMITS     "-" or "as=BYTES,nproc=N" (the fallback when there are no cgroups), plus "uid=U,gid=G"
 *               when the job runs as another user (no supplementary groups, no new privileges)
 *   PROCS       cgroup.procs files the job joins before exec (one per hierarchy)
 *   STATS       "name:field:path" counters read when the job ends; field is "-" (the file is one
 *               number), "+reset" (one number, reset by a write through the same descriptor when the
 *               job starts: cgroup v2 memory.peak) or a key whose line "key N" holds the number
 *
 * The runtime spawns the shim with stdout/stderr on the attempt's log and descriptor 3 open on
 * RECORD_DIR, flock'ed; the shim starts a session of its own and holds that lock for its whole life:
 * a lock that can be taken with no status file in the directory means the shim is gone and the
 * exit was lost. With cgroups, descriptor 4 holds the slot cgroup's flock, which keeps the slot
 * claimed while the shim lives (even if the runtime that started it is gone).
 * The job writes RECORD_DIR/pid; the shim writes RECORD_DIR/status atomically (temp + rename).
 *
 *   freight-shim --serve
 *
 * runs the launcher instead (launcher.c): it forks shims on the runtime's requests, each of which
 * sets itself up as described above and then runs supervise(), as a spawned shim does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"


struct stat_spec {
    const char *name;
    const char *field;
    const char *path;
    int fd; /* held open from start to end for "+reset" counters, else -1 */
};

const char *record_dir;

static char *record_path(const char *name) {
    size_t len = strlen(record_dir) + strlen(name) + 2;
    char *path = malloc(len);
    if (!path) {
        dprintf(2, "freight-shim: out of memory\n");
        _exit(SHIM_FAILED);
    }
    snprintf(path, len, "%s/%s", record_dir, name);
    return path;
}

static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* temp + rename, so a reader sees the whole file or none */
static int write_record(const char *name, const char *data, size_t len) {
    char tmp_name[64];
    snprintf(tmp_name, sizeof tmp_name, ".%s.tmp", name);
    char *tmp = record_path(tmp_name);
    char *final = record_path(name);
    int rc = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        int ok = write_all(fd, data, len) == 0;
        if (close(fd) == 0 && ok && rename(tmp, final) == 0)
            rc = 0;
    }
    free(tmp);
    free(final);
    return rc;
}

/* In the child, before exec: say what failed in the log and to the shim, then give up.
 * (snprintf and write, not dprintf, which allocates: this runs between vfork and exec.) */
static void child_fail(int errfd, const char *what, const char *arg, int err) {
    char line[1040];
    int n = snprintf(line, sizeof line, "freight: cannot %s '%s': %s\n", what, arg, strerror(err));
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof line)
        n = sizeof line - 1;
    write_all(2, line, (size_t)n);
    /* the shim gets the message without its prefix and newline */
    const size_t prefix = sizeof "freight: " - 1;
    write_all(errfd, line + prefix, (size_t)n > prefix ? (size_t)n - prefix - (line[n - 1] == '\n') : 0);
    _exit(127);
}

/* Sets the rlimits SPEC names; the user to switch to goes to *uid and *gid (-1: stay). */
static void set_limits(int errfd, char *spec, long *uid, long *gid) {
    if (strcmp(spec, "-") == 0)
        return;
    for (char *save = NULL, *item = strtok_r(spec, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq)
            child_fail(errfd, "parse limit", item, EINVAL);
        *eq = '\0';
        unsigned long long value = strtoull(eq + 1, NULL, 10);
        if (strcmp(item, "uid") == 0 || strcmp(item, "gid") == 0) {
            if (value == 0 || value > 0x7fffffffULL)
                child_fail(errfd, "switch to user", eq + 1, EINVAL);
            *(item[0] == 'u' ? uid : gid) = (long)value;
            continue;
        }
        int resource;
        if (strcmp(item, "as") == 0)
            resource = RLIMIT_AS;
        else if (strcmp(item, "nproc") == 0)
            resource = RLIMIT_NPROC;
        else
            child_fail(errfd, "parse limit", item, EINVAL);
        struct rlimit rl = {(rlim_t)value, (rlim_t)value};
        if (setrlimit(resource, &rl) != 0)
            child_fail(errfd, "set limit", item, errno);
    }
}

/* Become the job's user for good: no supplementary groups, real, effective and saved ids all
 * changed, and no way back up through a setuid program. Raw syscalls: this runs in a vfork child,
 * where libc's wrappers would try to change every thread of the shim too. */
static void drop_privileges(int errfd, long uid, long gid) {
    if (gid < 0)
        gid = uid;
    if (syscall(SYS_setgroups, 0, NULL) != 0)
        child_fail(errfd, "drop supplementary groups for", "the job", errno);
    if (syscall(SYS_setresgid, gid, gid, gid) != 0)
        child_fail(errfd, "switch to group", "the job's", errno);
    if (syscall(SYS_setresuid, uid, uid, uid) != 0)
        child_fail(errfd, "switch to user", "the job's", errno);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        child_fail(errfd, "forbid new privileges for", "the job", errno);
}

static void reset_signals(void) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL); /* fails harmlessly for signals libc reserves */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* The job, between vfork and exec: it shares the shim's memory, so it allocates nothing and
 * returns nowhere (paths are made before the vfork). */
static void run_child(int errfd, const struct job *job, const char *pid_path, const char *kill_path) {
    reset_signals();
    char pid_text[32];
    int pid_len = snprintf(pid_text, sizeof pid_text, "%d", (int)getpid());
    for (int i = 0; i < job->nprocs; i++) {
        int fd = open(job->procs[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write_all(fd, pid_text, (size_t)pid_len) != 0)
            child_fail(errfd, "join cgroup", job->procs[i], errno);
        close(fd);
    }
    setpgid(0, 0);
    long uid = -1, gid = -1;
    set_limits(errfd, job->rlimits, &uid, &gid);
    /* The pid file appears only once the job is in its cgroups and process group, and the kill file
     * is checked after the pid is in it: a kill() that finds no pid there is sure to be seen here.
     * (No temp + rename: a reader treats an empty pid file as no pid yet.) Both while still root:
     * the record directory is the platform's, closed to jobs. */
    int pid_fd = open(pid_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (pid_fd < 0 || write_all(pid_fd, pid_text, (size_t)pid_len) != 0 || close(pid_fd) != 0)
        child_fail(errfd, "write", pid_path, errno);
    if (access(kill_path, F_OK) == 0)
        kill(getpid(), SIGKILL);
    if (uid >= 0)
        drop_privileges(errfd, uid, gid);
    /* after the switch: the job's directory must be one its user may enter (a relative path
     * inside a closed directory entered as root would still open files there) */
    if (strcmp(job->cwd, "-") != 0 && chdir(job->cwd) != 0)
        child_fail(errfd, "enter directory", job->cwd, errno);
    execvp(job->command[0], job->command);
    child_fail(errfd, "run", job->command[0], errno);
}

static void parse_stats(int nstats, char **args, struct stat_spec *stats) {
    for (int i = 0; i < nstats; i++) {
        char *name = args[i];
        char *field = strchr(name, ':');
        char *path = field ? strchr(field + 1, ':') : NULL;
        if (!path) {
            dprintf(2, "freight-shim: bad counter spec '%s'\n", name);
            _exit(SHIM_FAILED);
        }
        *field++ = '\0';
        *path++ = '\0';
        stats[i] = (struct stat_spec){name, field, path, -1};
        if (strcmp(field, "+reset") == 0) {
            int fd = open(path, O_RDWR | O_CLOEXEC);
            if (fd >= 0 && write_all(fd, "0", 1) != 0) {
                close(fd); /* kernel without per-descriptor reset: the lifetime peak would mislead */
                fd = -1;
            }
            stats[i].fd = fd;
            if (fd < 0)
                stats[i].path = NULL;
        }
    }
}

static int read_stat(struct stat_spec *stat, unsigned long long *value) {
    if (!stat->path)
        return -1;
    char buf[4096];
    int fd = stat->fd >= 0 ? stat->fd : open(stat->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    stat->fd = -1;
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    if (stat->field[0] == '-' || stat->field[0] == '+') {
        *value = strtoull(buf, NULL, 10);
        return 0;
    }
    size_t key_len = strlen(stat->field);
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, stat->field, key_len) == 0 && line[key_len] == ' ') {
            *value = strtoull(line + key_len + 1, NULL, 10);
            return 0;
        }
    }
    return -1;
}

/* The lock is on the record directory itself (no file to create). The runtime takes it before it
 * spawns the shim and hands it over as descriptor 3, so the attempt is never seen unlocked. */
static int lock_record_dir(void) {
    struct stat inherited, dir;
    int fd = 3;
    if (fstat(fd, &inherited) != 0 || stat(record_dir, &dir) != 0 || inherited.st_dev != dir.st_dev ||
        inherited.st_ino != dir.st_ino) {
        close(3); /* started by hand: whatever 3 is, the job must not inherit it */
        fd = open(record_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return -1;
    } else if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
        return -1;
    }
    int rc;
    do
        rc = flock(fd, LOCK_EX);
    while (rc != 0 && errno == EINTR);
    return rc;
}

static void append(char *buf, size_t size, size_t *len, const char *fmt, ...) {
    if (*len >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, size - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = *len + (size_t)n < size ? *len + (size_t)n : size - 1;
}

/* Ignore what a terminal or a stopping scheduler sends, leave the caller's session, unblock signals.
 * The runtime spawns the shim with every signal blocked; it leaves the scheduler's session here
 * rather than through posix_spawn's setsid, which makes the spawner's next look at /proc/PID/stat
 * wait for the exec to finish (~0.8 ms). */
void enter_own_session(void) {
    int ignored[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        signal(ignored[i], SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--serve") == 0)
        return serve();
    if (argc < 7) {
        dprintf(2, "usage: freight-shim RECORD_DIR CWD RLIMITS NPROCS PROCS... NSTATS STATS... COMMAND...\n"
                   "       freight-shim --serve   (the launcher; see launcher.c)\n");
        return SHIM_FAILED;
    }
#ifdef SYS_close_range
    syscall(SYS_close_range, 5U, ~0U, 0U); /* nothing of the scheduler's may leak into the job */
#endif
    record_dir = argv[1];
    struct job job = {.cwd = argv[2], .rlimits = argv[3], .nprocs = atoi(argv[4])};
    if (job.nprocs < 0 || 5 + job.nprocs >= argc) {
        dprintf(2, "freight-shim: bad cgroup list\n");
        return SHIM_FAILED;
    }
    job.procs = argv + 5;
    job.nstats = atoi(argv[5 + job.nprocs]);
    int command_at = 6 + job.nprocs + job.nstats;
    if (job.nstats < 0 || command_at >= argc) {
        dprintf(2, "freight-shim: bad counter list or no command\n");
        return SHIM_FAILED;
    }
    job.stats = argv + 6 + job.nprocs;
    job.command = argv + command_at;

    enter_own_session();
    if (lock_record_dir() != 0) {
        dprintf(2, "freight-shim: cannot lock %s: %s\n", record_dir, strerror(errno));
        return SHIM_FAILED;
    }
    if (job.nprocs > 0)
        fcntl(4, F_SETFD, FD_CLOEXEC); /* the slot's claim: ours to keep, not the job's */
    else
        close(4);
    return supervise(&job);
}

/* Run the job and record how it ended. Expects the shim's own session and signal dispositions,
 * stdio in place, descriptor 3 holding the record directory's lock and descriptor 4 the slot's
 * claim (both close-on-exec), or 4 closed; nothing else open. Returns the shim's exit code. */
int supervise(const struct job *job) {
    struct stat_spec *stats = calloc((size_t)job->nstats + 1, sizeof *stats);
    if (!stats) {
        dprintf(2, "freight-shim: out of memory\n");
        return SHIM_FAILED;
    }
    parse_stats(job->nstats, job->stats, stats);
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0) {
        dprintf(2, "freight-shim: pipe: %s\n", strerror(errno));
        return SHIM_FAILED;
    }
    struct timespec started, ended;
    clock_gettime(CLOCK_REALTIME, &started);
    char *pid_path = record_path("pid"), *kill_path = record_path("kill");
    /* vfork: no copy of the shim's memory to make and tear down again (~50 us per job here) */
    pid_t child = vfork();
    if (child == 0) {
        close(errpipe[0]);
        run_child(errpipe[1], job, pid_path, kill_path);
    }
    int fork_errno = errno;
    close(errpipe[1]);

    char error[1024] = "";
    size_t error_len = 0;
    if (child < 0) {
        error_len = (size_t)snprintf(error, sizeof error, "cannot start a process: %s", strerror(fork_errno));
    } else {
        /* EOF when exec succeeds (the pipe is close-on-exec), else the child's message */
        for (;;) {
            ssize_t n = read(errpipe[0], error + error_len, sizeof error - 1 - error_len);
            if (n > 0) {
                error_len += (size_t)n;
                if (error_len < sizeof error - 1)
                    continue;
            } else if (n < 0 && errno == EINTR) {
                continue;
            }
            break;
        }
        error[error_len] = '\0';
    }
    close(errpipe[0]);
    for (size_t i = 0; i < error_len; i++)
        if (error[i] == '\n' || error[i] == '\r')
            error[i] = ' ';

    int status = 0;
    struct rusage usage;
    memset(&usage, 0, sizeof usage);
    int waited = 0;
    while (child > 0) {
        pid_t r = wait4(child, &status, 0, &usage);
        if (r == child) {
            waited = 1;
            break;
        }
        if (r < 0 && errno != EINTR)
            break;
    }
    clock_gettime(CLOCK_REALTIME, &ended);

    char record[8192];
    size_t len = 0;
    if (waited && WIFEXITED(status))
        append(record, sizeof record, &len, "exit=%d\n", WEXITSTATUS(status));
    else if (waited && WIFSIGNALED(status))
        append(record, sizeof record, &len, "signal=%d\ncore=%d\n", WTERMSIG(status), WCOREDUMP(status) ? 1 : 0);
    if (error_len)
        append(record, sizeof record, &len, "error=%s\n", error);
    if (child > 0)
        append(record, sizeof record, &len, "pid=%d\n", (int)child);
    append(record, sizeof record, &len, "started=%lld.%09ld\nended=%lld.%09ld\n", (long long)started.tv_sec,
           started.tv_nsec, (long long)ended.tv_sec, ended.tv_nsec);
    append(record, sizeof record, &len, "utime=%lld.%06ld\nstime=%lld.%06ld\nmaxrss=%ld\n",
           (long long)usage.ru_utime.tv_sec, (long)usage.ru_utime.tv_usec, (long long)usage.ru_stime.tv_sec,
           (long)usage.ru_stime.tv_usec, usage.ru_maxrss);
    for (int i = 0; i < job->nstats; i++) {
        unsigned long long value;
        if (read_stat(&stats[i], &value) == 0)
            append(record, sizeof record, &len, "cg.%s=%llu\n", stats[i].name, value);
    }
    if (write_record("status", record, len) != 0) {
        dprintf(2, "freight-shim: cannot record the exit status in %s: %s\n", record_dir, strerror(errno));
        return SHIM_FAILED;
    }
    return 0;
}
