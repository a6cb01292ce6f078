/*
 * fs.c - lifecycle of a FUSE mount (fs/fs.h): builds the session with
 * default_permissions (allow_other only when asked), mounts, runs the
 * multi-threaded request loop and the oplog follower in background threads,
 * and tears everything down: lazy unmount, aborting the connection if open
 * files keep it alive, committing what open files still buffer. Request
 * handling is in fs_ops.c.
 */
#include "fs/fs_int.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void *fs_loopMain(void *arg)
{
	fs_ctx *m = arg;
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	if (cfg) {
		fuse_loop_cfg_set_clone_fd(cfg, 0);
		fuse_loop_cfg_set_idle_threads(cfg, 8);
		fuse_loop_cfg_set_max_threads(cfg, 64);
	}
	int r = fuse_session_loop_mt(m->se, cfg);
	if (r < 0 && !atomic_load(&m->stopping))
		fprintf(stderr, "seglake mount: session ended: %s\n", strerror(-r));
	fuse_loop_cfg_destroy(cfg);
	pthread_mutex_lock(&m->dlock);
	m->done = 1;
	pthread_cond_broadcast(&m->dcond);
	pthread_mutex_unlock(&m->dlock);
	return NULL;
}

/* The FUSE connection number of our mount, from /proc/self/mountinfo. */
static unsigned fs_connId(const char *mountpoint)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return 0;
	char line[4096];
	unsigned id = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned maj, mnr;
		char mp[PATH_MAX];
		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &mnr, mp) != 3)
			continue;
		/* mountinfo escapes spaces as \040; compare only plain paths */
		if (strcmp(mp, mountpoint) == 0 && strstr(line, " - fuse.seglake "))
			id = (maj << 20) | mnr; /* keep the last (topmost) match */
	}
	fclose(f);
	return id;
}

int fs_mount_start(core *c, const fs_opts *o, fs_mount **out, sl_err *err)
{
	*out = NULL;
	if (!o || !o->mountpoint)
		return sl_err_set(err, SL_EINVAL, "no mountpoint");
	char real[PATH_MAX];
	if (!realpath(o->mountpoint, real))
		return sl_err_set(err, SL_EINVAL, "mountpoint %s: %s", o->mountpoint,
				  strerror(errno));
	fs_ctx *m = calloc(1, sizeof(*m));
	if (!m)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	m->c = c;
	m->mountpoint = strdup(real);
	m->bucket = o->bucket ? strdup(o->bucket) : NULL;
	m->debug = o->debug;
	m->uid = getuid();
	m->gid = getgid();
	pthread_mutex_init(&m->slock, NULL);
	pthread_mutex_init(&m->fhlock, NULL);
	pthread_mutex_init(&m->dlock, NULL);
	pthread_cond_init(&m->dcond, NULL);
	snprintf(m->node, sizeof(m->node), "%s", core_node_id(c));
	int rc = 0;
	if (!m->mountpoint || (o->bucket && !m->bucket)) {
		rc = sl_err_set(err, SL_ENOMEM, "out of memory");
		goto fail;
	}
	if (stat(core_dir(c), &m->rootst) < 0) {
		rc = sl_err_set(err, SL_EIO, "data dir %s: %s", core_dir(c), strerror(errno));
		goto fail;
	}
	if (m->bucket) {
		core_bucket b;
		rc = core_bucket_get(c, m->bucket, &b, err);
		if (rc < 0)
			goto fail;
	}
	if (fs_inode_table_init(m) < 0) {
		rc = sl_err_set(err, SL_ENOMEM, "out of memory");
		goto fail;
	}
	fs_data_init(m);

	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	char opts[256];
	snprintf(opts, sizeof(opts), "default_permissions,fsname=seglake,subtype=seglake%s",
		 o->allow_other ? ",allow_other" : "");
	if (fuse_opt_add_arg(&args, "seglake") || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, opts) || (o->debug && fuse_opt_add_arg(&args, "-d"))) {
		fuse_opt_free_args(&args);
		rc = sl_err_set(err, SL_ENOMEM, "out of memory");
		goto fail_table;
	}
	m->se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), m);
	fuse_opt_free_args(&args);
	if (!m->se) {
		rc = sl_err_set(err, SL_EINVAL, "cannot create the FUSE session");
		goto fail_table;
	}
	if (fuse_session_mount(m->se, m->mountpoint) != 0) {
		rc = sl_err_set(err, SL_EIO, "cannot mount on %s (is /dev/fuse usable?)",
				m->mountpoint);
		fuse_session_destroy(m->se);
		goto fail_table;
	}
	m->conn_id = fs_connId(m->mountpoint);
	m->oplog_seen = core_oplog_head(c);
	if (pthread_create(&m->loop_thr, NULL, fs_loopMain, m) != 0) {
		rc = sl_err_set(err, SL_EINTERNAL, "cannot start the FUSE loop thread");
		fuse_session_unmount(m->se);
		fuse_session_destroy(m->se);
		goto fail_table;
	}
	m->loop_started = 1;
	if (pthread_create(&m->notify_thr, NULL, fs_notify_main, m) == 0)
		m->notify_started = 1;
	else
		fprintf(stderr, "seglake mount: no oplog follower; S3 changes show after 1 s\n");
	*out = m;
	return 0;

fail_table:
	fs_inode_table_free(m);
fail:
	fs_data_fini(m);
	free(m->mountpoint);
	free(m->bucket);
	free(m);
	return rc;
}

void fs_mount_wait(fs_mount *m)
{
	pthread_mutex_lock(&m->dlock);
	while (!m->done)
		pthread_cond_wait(&m->dcond, &m->dlock);
	pthread_mutex_unlock(&m->dlock);
}

int fs_mount_done(fs_mount *m)
{
	pthread_mutex_lock(&m->dlock);
	int d = m->done;
	pthread_mutex_unlock(&m->dlock);
	return d;
}

static int fs_waitDone(fs_ctx *m, int seconds)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += seconds;
	pthread_mutex_lock(&m->dlock);
	while (!m->done)
		if (pthread_cond_timedwait(&m->dcond, &m->dlock, &ts) == ETIMEDOUT)
			break;
	int d = m->done;
	pthread_mutex_unlock(&m->dlock);
	return d;
}

/* Detaches the mount (open files keep the connection). 0 when the path no
 * longer holds it, by this call or before. */
static int fs_unmountLazy(fs_ctx *m)
{
	if (geteuid() == 0) {
		if (umount2(m->mountpoint, MNT_DETACH) == 0 || errno == EINVAL || errno == ENOENT)
			return 0;
	}
	pid_t pid = fork();
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "-z", "-q", m->mountpoint, (char *)NULL);
		_exit(127);
	}
	if (pid < 0)
		return -1;
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* After fs_unmountLazy the path may already hold someone else's mount, and
 * libfuse's own unmount would detach it again (or print a failure when
 * nothing is there). It skips that when the device reports POLLERR, which a
 * /dev/fuse descriptor attached to no mount does: put one in the session's
 * place. Dropping the old descriptor also ends the connection, as closing it
 * would; every thread that used it has stopped. */
static void fs_releaseDevice(fs_ctx *m)
{
	int fd = fuse_session_fd(m->se);
	if (fd < 0)
		return;
	int nfd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (nfd < 0)
		return;
	if (dup3(nfd, fd, O_CLOEXEC) < 0)
		fprintf(stderr, "seglake mount: dup3 /dev/fuse: %s\n", strerror(errno));
	close(nfd);
}

static void fs_abortConn(fs_ctx *m)
{
	if (!m->conn_id)
		return;
	char p[64];
	snprintf(p, sizeof(p), "/sys/fs/fuse/connections/%u/abort", m->conn_id);
	int fd = open(p, O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "1", 1) < 0)
			fprintf(stderr, "seglake mount: abort %s: %s\n", p, strerror(errno));
		close(fd);
	}
}

static void fs_kickHandler(int sig)
{
	(void)sig; /* only interrupts the blocking read of /dev/fuse */
}

/* Without /sys/fs/fuse/connections, end the session by interrupting the
 * workers blocked in read(2) on the FUSE fd (seen in /proc/self/task/N/syscall):
 * the session is marked exited, so they stop instead of reading again. */
static void fs_kickWorkers(fs_ctx *m)
{
	int sig = SIGRTMIN + 5;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fs_kickHandler; /* no SA_RESTART: read returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
	int fd = fuse_session_fd(m->se);
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		pid_t tid = (pid_t)atoi(de->d_name);
		if (tid <= 0 || tid == (pid_t)syscall(SYS_gettid))
			continue;
		char p[64], line[256];
		snprintf(p, sizeof(p), "/proc/self/task/%d/syscall", (int)tid);
		FILE *f = fopen(p, "r");
		if (!f)
			continue;
		long nr = -1;
		unsigned long a0 = 0;
		if (fgets(line, sizeof(line), f) && sscanf(line, "%ld %lx", &nr, &a0) == 2 &&
		    nr == SYS_read && a0 == (unsigned long)fd)
			syscall(SYS_tgkill, getpid(), tid, sig);
		fclose(f);
	}
	closedir(d);
}

/* Shutdown: commit what open files still buffer (no requests run any more). */
static void fs_flushOne(fs_ctx *m, fs_inode *in, void *arg)
{
	(void)arg;
	fs_data *d = in->data;
	if (!d->dirty || !in->hashed || !in->bucket)
		return;
	int r = fs_data_commit(m, d, in->bucket, in->path, 0);
	if (r < 0)
		fprintf(stderr, "seglake mount: commit of %s/%s at unmount failed: %s\n",
			in->bucket, in->path, strerror(-r));
}

void fs_mount_stop(fs_mount *m)
{
	if (!m)
		return;
	atomic_store(&m->stopping, 1);
	int detached = 0;
	if (!fs_mount_done(m)) {
		fuse_session_exit(m->se);
		detached = fs_unmountLazy(m) == 0;
		/* Files still open after a lazy unmount keep the connection alive:
		 * give them a moment, then cut it (their buffers are committed below). */
		if (!fs_waitDone(m, 2)) {
			fs_abortConn(m);
			for (int i = 0; i < 50 && !fs_waitDone(m, 0); i++) {
				fs_kickWorkers(m);
				struct timespec ts = { 0, 100 * 1000 * 1000 };
				nanosleep(&ts, NULL);
			}
		}
	}
	if (m->loop_started)
		pthread_join(m->loop_thr, NULL);
	if (m->notify_started) {
		core_wake(m->c);
		pthread_join(m->notify_thr, NULL);
	}
	fs_inode_each_data(m, fs_flushOne, NULL);
	if (detached)
		fs_releaseDevice(m);
	fuse_session_unmount(m->se);
	fuse_session_destroy(m->se);
	/* handles the kernel never released (the session ended first): their
	 * data was committed above; only the handles remain */
	while (m->fhs) {
		fs_fh *fh = m->fhs;
		m->fhs = fh->next;
		free(fh);
	}
	fs_dirs_free(m); /* likewise directory handles (a RELEASEDIR still queued) */
	pthread_mutex_destroy(&m->fhlock);
	fs_inode_table_free(m);
	fs_self_free(m);
	pthread_mutex_destroy(&m->slock);
	pthread_mutex_destroy(&m->dlock);
	pthread_cond_destroy(&m->dcond);
	fs_data_fini(m);
	free(m->mountpoint);
	free(m->bucket);
	free(m);
}
