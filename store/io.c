/* io.c - the POSIX backend of store_io and the loop helpers. */
#include "store/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int px_open(const store_io *io, const char *path, int flags, int mode)
{
	(void)io;
	int fd = open(path, flags | O_CLOEXEC, mode);
	return fd < 0 ? -errno : fd;
}

static int px_close(const store_io *io, int fd)
{
	(void)io;
	return close(fd) < 0 ? -errno : 0;
}

static ssize_t px_pread(const store_io *io, int fd, void *buf, size_t n, off_t off)
{
	(void)io;
	ssize_t r;
	do
		r = pread(fd, buf, n, off);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

static ssize_t px_pwrite(const store_io *io, int fd, const void *buf, size_t n, off_t off)
{
	(void)io;
	ssize_t r;
	do
		r = pwrite(fd, buf, n, off);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

static int px_fsync(const store_io *io, int fd)
{
	(void)io;
	return fdatasync(fd) < 0 ? -errno : 0;
}

static int px_ftruncate(const store_io *io, int fd, off_t len)
{
	(void)io;
	return ftruncate(fd, len) < 0 ? -errno : 0;
}

static int px_fallocate(const store_io *io, int fd, off_t len)
{
	(void)io;
	/* not posix_fallocate: where the filesystem cannot, glibc writes a
	 * byte into every block itself, racing with writes to the file */
	return fallocate(fd, 0, 0, len) < 0 ? -errno : 0;
}

static off_t px_size(const store_io *io, int fd)
{
	(void)io;
	struct stat st;
	return fstat(fd, &st) < 0 ? -errno : st.st_size;
}

static int px_rename(const store_io *io, const char *from, const char *to)
{
	(void)io;
	return rename(from, to) < 0 ? -errno : 0;
}

static int px_unlink(const store_io *io, const char *path)
{
	(void)io;
	return unlink(path) < 0 ? -errno : 0;
}

static int px_fsync_dir(const store_io *io, const char *dir)
{
	(void)io;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static int px_writeback(const store_io *io, int fd, off_t off, off_t len)
{
	(void)io;
	return sync_file_range(fd, off, len, SYNC_FILE_RANGE_WRITE) < 0 ? -errno : 0;
}

static int px_direct(const store_io *io, int fd, int on)
{
	(void)io;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	fl = on ? fl | O_DIRECT : fl & ~O_DIRECT;
	return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

#ifndef __NR_cachestat
#define __NR_cachestat 451 /* the same on every architecture */
#endif

struct px_cachestat_range {
	uint64_t off, len;
};

struct px_cachestat {
	uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

static int px_cached(const store_io *io, int fd, off_t off, off_t len)
{
	(void)io;
	static atomic_int unknown; /* an older kernel, or a filter that refuses it */
	if (len <= 0 || off < 0)
		return -EINVAL;
	if (atomic_load(&unknown))
		return -ENOSYS;
	struct px_cachestat_range r = { (uint64_t)off, (uint64_t)len };
	struct px_cachestat cs;
	if (syscall(__NR_cachestat, fd, &r, &cs, 0) < 0) {
		int e = errno;
		if (e == ENOSYS || e == EPERM)
			atomic_store(&unknown, 1);
		return -e;
	}
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t pages = ((uint64_t)off + (uint64_t)len + pg - 1) / pg - (uint64_t)off / pg;
	return cs.nr_cache >= pages;
}

static const store_io posix_io = {
	.open = px_open,
	.close = px_close,
	.pread = px_pread,
	.pwrite = px_pwrite,
	.fsync = px_fsync,
	.ftruncate = px_ftruncate,
	.fallocate = px_fallocate,
	.size = px_size,
	.rename = px_rename,
	.unlink = px_unlink,
	.fsync_dir = px_fsync_dir,
	.ctx = NULL,
	.writeback = px_writeback,
	.direct = px_direct,
	.cached = px_cached,
};

const store_io *store_io_posix(void)
{
	return &posix_io;
}

int store_io_write_all(const store_io *io, int fd, const void *buf, size_t n, off_t off)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = io->pwrite(io, fd, p, n, off);
		if (w < 0)
			return (int)w;
		if (w == 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

int store_io_read_all(const store_io *io, int fd, void *buf, size_t n, off_t off)
{
	char *p = buf;
	while (n > 0) {
		ssize_t r = io->pread(io, fd, p, n, off);
		if (r < 0)
			return (int)r;
		if (r == 0)
			return -EIO;
		p += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}
