/*
 * io.h - the one small I/O interface through which store/ touches the disk.
 *
 * Like SQLite's VFS: a table of functions plus a context pointer. The POSIX
 * backend is the real one; the fault backend (store/io_fault.c) wraps it to
 * inject EIO, ENOSPC, short writes and simulated power loss in tests.
 * Return convention: >= 0 on success (fd, byte count, 0), -errno on failure.
 * Not here: buffering, caching, anything above plain system calls.
 */
#ifndef SL_STORE_IO_H
#define SL_STORE_IO_H

#include <stddef.h>
#include <sys/types.h>

typedef struct store_io {
	int (*open)(const struct store_io *io, const char *path, int flags, int mode);
	int (*close)(const struct store_io *io, int fd);
	ssize_t (*pread)(const struct store_io *io, int fd, void *buf, size_t n, off_t off);
	ssize_t (*pwrite)(const struct store_io *io, int fd, const void *buf, size_t n, off_t off);
	int (*fsync)(const struct store_io *io, int fd); /* data (fdatasync) */
	int (*ftruncate)(const struct store_io *io, int fd, off_t len);
	int (*fallocate)(const struct store_io *io, int fd, off_t len); /* may be -EOPNOTSUPP */
	off_t (*size)(const struct store_io *io, int fd);
	int (*rename)(const struct store_io *io, const char *from, const char *to);
	int (*unlink)(const struct store_io *io, const char *path);
	int (*fsync_dir)(const struct store_io *io, const char *dir);
	void *ctx;
	/* Starts writing [off, off+len) back to disk without waiting for it: a
	 * hint so that a later fsync has less to do; durability still comes
	 * only from fsync. May be NULL. */
	int (*writeback)(const struct store_io *io, int fd, off_t off, off_t len);
	/* Turns O_DIRECT on (on=1) or off for fd: writes then bypass the page
	 * cache, and offset, length and buffer must be multiples of
	 * STORE_IO_DIRECT_ALIGN. -errno (-EINVAL) where the filesystem cannot.
	 * May be NULL. */
	int (*direct)(const struct store_io *io, int fd, int on);
	/* Whether every page of [off, off+len) of fd is in the page cache: 1
	 * yes, 0 no, -errno where it cannot tell (cachestat(2) came with Linux
	 * 6.5). May be NULL. */
	int (*cached)(const struct store_io *io, int fd, off_t off, off_t len);
} store_io;

#define STORE_IO_DIRECT_ALIGN 4096

const store_io *store_io_posix(void);

/* Writes all n bytes (looping on short writes); -errno on failure. */
int store_io_write_all(const store_io *io, int fd, const void *buf, size_t n, off_t off);
/* Reads exactly n bytes; -EIO if the file is shorter. */
int store_io_read_all(const store_io *io, int fd, void *buf, size_t n, off_t off);

/* ---- fault injection (tests) ---------------------------------------------- */

typedef struct store_io_fault store_io_fault;
typedef struct store_io_fault_cfg {
	long long enospc_after_bytes; /* pwrite fails with ENOSPC once this many bytes were written
					 (-1 off) */
	long long eio_after_writes;   /* the Nth pwrite and later fail with EIO (-1 off) */
	int short_writes;	      /* every pwrite writes at most half (callers must loop) */
	int fail_fsync;		      /* fsync returns -EIO */
	int direct;		      /* O_DIRECT may be turned on (else it is refused) */
} store_io_fault_cfg;

store_io_fault *store_io_fault_new(const store_io_fault_cfg *cfg);
const store_io *store_io_fault_io(store_io_fault *f);
void store_io_fault_set(store_io_fault *f, const store_io_fault_cfg *cfg);
/* Simulated power loss: every file written through f is cut back to its
 * length at its last fsync, plus `torn` bytes of what followed (a torn
 * tail), and every fd is closed. The backend is unusable afterwards except
 * for _free. */
void store_io_fault_crash(store_io_fault *f, size_t torn);
void store_io_fault_free(store_io_fault *f);

#endif
