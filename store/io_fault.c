/*
 * io_fault.c - a store_io backend for tests that wraps POSIX and injects
 * faults: ENOSPC after a byte budget, EIO after a write count, short writes,
 * failing fsync, and simulated power loss (files cut back to what was
 * fsynced, plus a torn tail). Not for production use.
 */
#include "store/io.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAULT_MAX_FD 1024

struct store_io_fault {
	store_io io;
	store_io_fault_cfg cfg;
	pthread_mutex_t mu;
	long long bytes_written;
	long long writes;
	int crashed;
	/* per fd: is it tracked, file length at the last fsync, current length */
	struct {
		int used;
		off_t synced;
		off_t len;
	} fds[FAULT_MAX_FD];
};

static store_io_fault *F(const store_io *io)
{
	return io->ctx;
}

static int f_open(const store_io *io, const char *path, int flags, int mode)
{
	store_io_fault *f = F(io);
	if (f->crashed)
		return -EIO;
	int fd = store_io_posix()->open(store_io_posix(), path, flags, mode);
	if (fd >= 0 && fd < FAULT_MAX_FD) {
		pthread_mutex_lock(&f->mu);
		off_t sz = store_io_posix()->size(store_io_posix(), fd);
		f->fds[fd].used = 1;
		f->fds[fd].synced = sz < 0 ? 0 : sz;
		f->fds[fd].len = f->fds[fd].synced;
		pthread_mutex_unlock(&f->mu);
	}
	return fd;
}

static int f_close(const store_io *io, int fd)
{
	store_io_fault *f = F(io);
	pthread_mutex_lock(&f->mu);
	if (fd >= 0 && fd < FAULT_MAX_FD)
		f->fds[fd].used = 0;
	pthread_mutex_unlock(&f->mu);
	return store_io_posix()->close(store_io_posix(), fd);
}

static ssize_t f_pread(const store_io *io, int fd, void *buf, size_t n, off_t off)
{
	if (F(io)->crashed)
		return -EIO;
	return store_io_posix()->pread(store_io_posix(), fd, buf, n, off);
}

static ssize_t f_pwrite(const store_io *io, int fd, const void *buf, size_t n, off_t off)
{
	store_io_fault *f = F(io);
	pthread_mutex_lock(&f->mu);
	if (f->crashed) {
		pthread_mutex_unlock(&f->mu);
		return -EIO;
	}
	f->writes++;
	if (f->cfg.eio_after_writes >= 0 && f->writes > f->cfg.eio_after_writes) {
		pthread_mutex_unlock(&f->mu);
		return -EIO;
	}
	if (f->cfg.enospc_after_bytes >= 0) {
		long long room = f->cfg.enospc_after_bytes - f->bytes_written;
		if (room <= 0) {
			pthread_mutex_unlock(&f->mu);
			return -ENOSPC;
		}
		if ((long long)n > room)
			n = (size_t)room; /* a short write, then ENOSPC on the next call */
	}
	if (f->cfg.short_writes && n > 1)
		n /= 2;
	pthread_mutex_unlock(&f->mu);
	ssize_t w = store_io_posix()->pwrite(store_io_posix(), fd, buf, n, off);
	if (w > 0) {
		pthread_mutex_lock(&f->mu);
		f->bytes_written += w;
		if (fd >= 0 && fd < FAULT_MAX_FD && off + w > f->fds[fd].len)
			f->fds[fd].len = off + w;
		pthread_mutex_unlock(&f->mu);
	}
	return w;
}

static int f_fsync(const store_io *io, int fd)
{
	store_io_fault *f = F(io);
	if (f->crashed || f->cfg.fail_fsync)
		return -EIO;
	int r = store_io_posix()->fsync(store_io_posix(), fd);
	if (r == 0 && fd >= 0 && fd < FAULT_MAX_FD) {
		pthread_mutex_lock(&f->mu);
		off_t sz = store_io_posix()->size(store_io_posix(), fd);
		f->fds[fd].synced = sz < 0 ? f->fds[fd].len : sz;
		pthread_mutex_unlock(&f->mu);
	}
	return r;
}

static int f_ftruncate(const store_io *io, int fd, off_t len)
{
	store_io_fault *f = F(io);
	if (f->crashed)
		return -EIO;
	int r = store_io_posix()->ftruncate(store_io_posix(), fd, len);
	if (r == 0 && fd >= 0 && fd < FAULT_MAX_FD) {
		pthread_mutex_lock(&f->mu);
		f->fds[fd].len = len;
		if (f->fds[fd].synced > len)
			f->fds[fd].synced = len;
		pthread_mutex_unlock(&f->mu);
	}
	return r;
}

static int f_fallocate(const store_io *io, int fd, off_t len)
{
	(void)io;
	(void)fd;
	(void)len;
	return -EOPNOTSUPP; /* keep file length == written length, so crashes cut precisely */
}

static off_t f_size(const store_io *io, int fd)
{
	(void)io;
	return store_io_posix()->size(store_io_posix(), fd);
}

static int f_rename(const store_io *io, const char *a, const char *b)
{
	if (F(io)->crashed)
		return -EIO;
	return store_io_posix()->rename(store_io_posix(), a, b);
}

static int f_unlink(const store_io *io, const char *p)
{
	if (F(io)->crashed)
		return -EIO;
	return store_io_posix()->unlink(store_io_posix(), p);
}

static int f_fsync_dir(const store_io *io, const char *d)
{
	if (F(io)->crashed || F(io)->cfg.fail_fsync)
		return -EIO;
	return store_io_posix()->fsync_dir(store_io_posix(), d);
}

static int f_direct(const store_io *io, int fd, int on)
{
	store_io_fault *f = F(io);
	pthread_mutex_lock(&f->mu);
	int can = f->cfg.direct && !f->cfg.short_writes;
	pthread_mutex_unlock(&f->mu);
	if (on && !can)
		return -EINVAL;
	return store_io_posix()->direct(store_io_posix(), fd, on);
}

store_io_fault *store_io_fault_new(const store_io_fault_cfg *cfg)
{
	store_io_fault *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	pthread_mutex_init(&f->mu, NULL);
	f->cfg.enospc_after_bytes = -1;
	f->cfg.eio_after_writes = -1;
	if (cfg)
		f->cfg = *cfg;
	f->io = (store_io){ f_open,	 f_close,     f_pread, f_pwrite, f_fsync,
			    f_ftruncate, f_fallocate, f_size,  f_rename, f_unlink,
			    f_fsync_dir, f,	      NULL,    f_direct, NULL };
	return f;
}

const store_io *store_io_fault_io(store_io_fault *f)
{
	return &f->io;
}

void store_io_fault_set(store_io_fault *f, const store_io_fault_cfg *cfg)
{
	pthread_mutex_lock(&f->mu);
	f->cfg = *cfg;
	f->bytes_written = 0;
	f->writes = 0;
	pthread_mutex_unlock(&f->mu);
}

void store_io_fault_crash(store_io_fault *f, size_t torn)
{
	pthread_mutex_lock(&f->mu);
	f->crashed = 1;
	for (int fd = 0; fd < FAULT_MAX_FD; fd++) {
		if (!f->fds[fd].used)
			continue;
		off_t keep = f->fds[fd].synced + (off_t)torn;
		if (keep < f->fds[fd].len)
			(void)!ftruncate(fd, keep);
		close(fd);
		f->fds[fd].used = 0;
	}
	pthread_mutex_unlock(&f->mu);
}

void store_io_fault_free(store_io_fault *f)
{
	if (!f)
		return;
	pthread_mutex_destroy(&f->mu);
	free(f);
}
