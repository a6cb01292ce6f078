/*
 * store.c - segment manager: recovery, append, rotation/sealing, reads, scans.
 * See store.h for the contract and segment.h for the format.
 */
#include "store/store.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/crc32c.h"

#define STORE_WRITEBACK_BYTES (8u << 20) /* appends between writeback hints */
#define STORE_WQ 3			 /* direct appends staged for the writer thread */

struct store {
	char *dir;
	const store_io *io;
	uint64_t seg_max;
	unsigned idle_sec;
	char node[17];

	pthread_mutex_t mu; /* guards everything below */
	pthread_cond_t cv;
	uint64_t *ids; /* sorted ids of every segment file */
	size_t nids, capids;
	uint64_t bytes; /* total bytes of all segments */
	int cur_fd;	/* open segment, -1 if none */
	uint64_t cur_id;
	uint64_t tail;	 /* end of the last record in the open segment */
	uint64_t synced; /* bytes of the open segment known durable */
	uint64_t kicked; /* bytes of the open segment whose writeback was started */
	int syncing;	 /* fsyncs in flight on cur_fd */
	int broken;	 /* a failed cleanup left the tail unknown: refuse appends */
	uint64_t fsize;	 /* file size of the open segment (> tail after a direct append) */
	int no_direct;	 /* O_DIRECT failed here once: COLD appends are plain */
	uint8_t *dbuf;	 /* aligned buffer of the first direct append (it finds out
			    whether O_DIRECT works here) */
	size_t dcap;
	atomic_int no_direct_read; /* O_DIRECT reads failed to start here: none are tried */
	/* Direct appends: staged under mu into an aligned buffer, written by the
	 * writer thread in order while the appender goes on. Plain writes,
	 * read-backs and seals wait for an empty queue (O_DIRECT is on for
	 * cur_fd while it is not). wtail: the records below it are written
	 * (readers, scans and syncs wait for it); werr: a queued write failed. */
	struct {
		uint8_t *buf;
		size_t cap, n;
		uint64_t off, end;
	} wq[STORE_WQ];
	int wqh, wqn;
	atomic_int wqueued; /* wqn, for readers' lock-free check */
	uint64_t wtail;
	int werr;
	int dir_on;
	int direct_ok;	 /* a direct write succeeded here: later ones may be staged */
	uint64_t falloc; /* the open segment is allocated up to here */
	pthread_t wthr;
	int wstarted, wstop;
	pthread_cond_t wcv; /* the writer thread waits here */
	/* The block holding the end of the last direct append, as staged: the
	 * next one starts in it (it may not be written yet). Valid while the
	 * open segment is tblk_id and its tail is tblk_tail (0: none). */
	uint8_t tblk[STORE_IO_DIRECT_ALIGN];
	uint64_t tblk_id, tblk_tail;
	int64_t last_append_ms;
	uint64_t nrecords;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void seg_path(const store *s, uint64_t id, char *out, size_t n)
{
	snprintf(out, n, "%s/seg-%016" PRIx64 ".sl", s->dir, id);
}

static int ids_add(store *s, uint64_t id)
{
	if (s->nids == s->capids) {
		size_t cap = s->capids ? s->capids * 2 : 64;
		uint64_t *p = realloc(s->ids, cap * sizeof(*p));
		if (!p)
			return SL_ENOMEM;
		s->ids = p;
		s->capids = cap;
	}
	s->ids[s->nids++] = id;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Walks one segment. Sets *tail to the end of the last valid record and
 * *sealed if a footer was found. Records at or after verify_off are fully
 * verified. Returns 0, or SL_ECORRUPT with *bad = offset of the first
 * invalid record (the caller decides whether that is a tail or damage). */
static int walk(store *s, int fd, uint64_t size, uint64_t verify_off, uint64_t *tail, int *sealed,
		uint64_t *bad, uint64_t *nrec)
{
	uint64_t pos = SEG_HEADER_SIZE;
	uint8_t *buf = NULL;
	size_t cap = 0;
	int rc = 0;
	*sealed = 0;
	while (pos < size) {
		uint8_t h[SEG_REC_HEADER];
		seg_rec r;
		if (pos + SEG_REC_HEADER > size ||
		    store_io_read_all(s->io, fd, h, sizeof(h), (off_t)pos) < 0 ||
		    seg_rec_decode(h, sizeof(h), &r) < 0 ||
		    pos + SEG_REC_HEADER + r.payload_len > size) {
			rc = SL_ECORRUPT;
			break;
		}
		if (pos >= verify_off) {
			if (cap < r.payload_len) {
				free(buf);
				cap = r.payload_len;
				buf = malloc(cap ? cap : 1);
				if (!buf) {
					free(buf);
					return SL_ENOMEM;
				}
			}
			if (store_io_read_all(s->io, fd, buf, r.payload_len,
					      (off_t)(pos + SEG_REC_HEADER)) < 0 ||
			    seg_rec_verify(&r, buf) < 0) {
				rc = SL_ECORRUPT;
				break;
			}
		}
		pos += SEG_REC_HEADER + r.payload_len;
		(*nrec)++;
		if (r.type == SEG_REC_FOOTER) {
			*sealed = 1;
			break;
		}
	}
	free(buf);
	*tail = pos;
	*bad = pos;
	return rc;
}

static int recover_segment(store *s, uint64_t id, int is_last, store_pos vf, int *keep_open,
			   uint64_t *tail_out, sl_err *err)
{
	char path[4096];
	seg_path(s, id, path, sizeof(path));
	*keep_open = -1;
	int fd = s->io->open(s->io, path, O_RDWR, 0);
	if (fd < 0)
		return sl_err_set(err, sl_code_from_errno(-fd), "open %s: %s", path, strerror(-fd));
	off_t size = s->io->size(s->io, fd);
	uint8_t hb[SEG_HEADER_SIZE];
	seg_header hdr;
	if (size < SEG_HEADER_SIZE || store_io_read_all(s->io, fd, hb, sizeof(hb), 0) < 0 ||
	    seg_header_decode(hb, sizeof(hb), &hdr) < 0 || hdr.id != id) {
		s->io->close(s->io, fd);
		if (is_last && (id > vf.seg || vf.off == 0)) {
			/* created but its header never became durable: holds nothing */
			s->io->unlink(s->io, path);
			s->nids--;
			*tail_out = 0;
			return 0;
		}
		return sl_err_set(err, SL_ECORRUPT, "segment %s: bad header", path);
	}
	uint64_t verify_off = id > vf.seg ? 0 : (id == vf.seg ? vf.off : UINT64_MAX);
	uint64_t tail, bad, nrec = 0;
	int sealed;
	int rc = walk(s, fd, (uint64_t)size, verify_off, &tail, &sealed, &bad, &nrec);
	s->nrecords = nrec;
	if (rc == SL_ENOMEM) {
		s->io->close(s->io, fd);
		return sl_err_set(err, rc, "out of memory recovering %s", path);
	}
	if (rc == SL_ECORRUPT && bad < verify_off) {
		s->io->close(s->io, fd);
		return sl_err_set(err, SL_ECORRUPT,
				  "segment %s: invalid record at offset %" PRIu64 " inside "
				  "committed data "
				  "(run fsck)",
				  path, bad);
	}
	if ((uint64_t)size > tail) {
		/* torn tail (or a preallocated/zero tail): cut it */
		int r = s->io->ftruncate(s->io, fd, (off_t)tail);
		if (r == 0)
			r = s->io->fsync(s->io, fd);
		if (r < 0) {
			s->io->close(s->io, fd);
			return sl_err_set(err, sl_code_from_errno(-r), "cut torn tail of %s: %s",
					  path, strerror(-r));
		}
		fprintf(stderr, "seglake: recovery: cut %" PRIu64 " torn bytes from %s\n",
			(uint64_t)size - tail, path);
	}
	*tail_out = tail;
	if (is_last && !sealed) {
		*keep_open = fd;
		return 0;
	}
	s->io->close(s->io, fd);
	return 0;
}

int store_open(const char *dir, const store_opts *o, store_pos vf, store **out, sl_err *err)
{
	store *s = calloc(1, sizeof(*s));
	if (!s)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	s->dir = strdup(dir);
	s->io = (o && o->io) ? o->io : store_io_posix();
	s->seg_max = (o && o->segment_max_bytes) ? o->segment_max_bytes : 256ull << 20;
	s->idle_sec = (o && o->segment_idle_sec) ? o->segment_idle_sec : 60;
	snprintf(s->node, sizeof(s->node), "%s", (o && o->node) ? o->node : "");
	s->cur_fd = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	pthread_cond_init(&s->wcv, NULL);
	int rc = 0;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		rc = sl_err_set(err, sl_code_from_errno(errno), "mkdir %s: %s", dir,
				strerror(errno));
		goto fail;
	}
	DIR *d = opendir(dir);
	if (!d) {
		rc = sl_err_set(err, SL_EIO, "opendir %s: %s", dir, strerror(errno));
		goto fail;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t id;
		char tail[8];
		if (sscanf(de->d_name, "seg-%16" SCNx64 ".%2s", &id, tail) == 2 &&
		    strcmp(tail, "sl") == 0 && strlen(de->d_name) == 23) {
			if ((rc = ids_add(s, id)) < 0) {
				closedir(d);
				sl_err_set(err, rc, "out of memory");
				goto fail;
			}
		}
	}
	closedir(d);
	if (s->nids)
		qsort(s->ids, s->nids, sizeof(*s->ids), cmp_u64);

	for (size_t i = 0; i < s->nids;) {
		uint64_t id = s->ids[i];
		int is_last = i + 1 == s->nids;
		if (id < vf.seg && !is_last) {
			char path[4096];
			struct stat st;
			seg_path(s, id, path, sizeof(path));
			if (stat(path, &st) == 0)
				s->bytes += (uint64_t)st.st_size;
			i++;
			continue;
		}
		int keep_fd = -1;
		uint64_t tail = 0;
		size_t before = s->nids;
		if ((rc = recover_segment(s, id, is_last, vf, &keep_fd, &tail, err)) < 0)
			goto fail;
		if (s->nids < before)
			continue; /* removed an empty last segment */
		s->bytes += tail;
		if (keep_fd >= 0) {
			s->cur_fd = keep_fd;
			s->cur_id = id;
			s->tail = tail;
			s->synced = tail;
			s->fsize = tail;
			s->wtail = tail;
			s->falloc = 0;
		}
		i++;
	}
	s->last_append_ms = now_ms();
	*out = s;
	return 0;
fail:
	store_close(s);
	return rc;
}

/* Waits until the writer thread has written every staged direct append and
 * turns O_DIRECT off: plain writes and read-backs may follow. */
static void drain_locked(store *s)
{
	while (s->wqn > 0)
		pthread_cond_wait(&s->cv, &s->mu);
	if (s->dir_on && s->cur_fd >= 0 && s->io->direct(s->io, s->cur_fd, 0) < 0)
		s->broken = 1; /* later plain writes would fail their alignment */
	s->dir_on = 0;
}

static int seal_locked(store *s, sl_err *err)
{
	if (s->cur_fd < 0)
		return 0;
	while (s->syncing > 0 || s->wqn > 0)
		pthread_cond_wait(&s->cv, &s->mu);
	if (s->cur_fd < 0)
		return 0; /* sealed by another caller meanwhile */
	drain_locked(s);  /* no wait left: only turns O_DIRECT off */
	if (s->werr)
		return sl_err_set(err, sl_code_from_errno(-s->werr), "seal segment: %s",
				  strerror(-s->werr));
	/* a direct append's zero padding must not follow the footer */
	if (s->fsize > s->tail) {
		int t = s->io->ftruncate(s->io, s->cur_fd, (off_t)s->tail);
		if (t < 0)
			return sl_err_set(err, sl_code_from_errno(-t), "seal segment: %s",
					  strerror(-t));
		s->fsize = s->tail;
	}
	char foot[128];
	int n = snprintf(foot, sizeof(foot),
			 "{\"records\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"sealed_ms\":%" PRId64
			 "}",
			 s->nrecords, s->tail, now_ms());
	uint8_t h[SEG_REC_HEADER];
	seg_rec_encode(SEG_REC_FOOTER, (uint32_t)n, sl_crc32c(0, foot, (size_t)n), h);
	int r = store_io_write_all(s->io, s->cur_fd, h, sizeof(h), (off_t)s->tail);
	if (r == 0)
		r = store_io_write_all(s->io, s->cur_fd, foot, (size_t)n,
				       (off_t)(s->tail + SEG_REC_HEADER));
	if (r == 0)
		r = s->io->fsync(s->io, s->cur_fd);
	if (r < 0) {
		/* leave the segment open; the partial footer is a torn tail to cut */
		if (s->io->ftruncate(s->io, s->cur_fd, (off_t)s->tail) < 0)
			s->broken = 1;
		return sl_err_set(err, sl_code_from_errno(-r), "seal segment: %s", strerror(-r));
	}
	s->bytes += SEG_REC_HEADER + (uint64_t)n;
	s->io->close(s->io, s->cur_fd);
	s->cur_fd = -1;
	s->nrecords = 0;
	return 0;
}

static int create_locked(store *s, sl_err *err)
{
	uint64_t id = s->nids ? s->ids[s->nids - 1] + 1 : 1;
	char path[4096];
	seg_path(s, id, path, sizeof(path));
	int fd = s->io->open(s->io, path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return sl_err_set(err, sl_code_from_errno(-fd), "create %s: %s", path,
				  strerror(-fd));
	seg_header h = { .id = id, .created_ms = now_ms() };
	memcpy(h.node, s->node, sizeof(h.node));
	uint8_t hb[SEG_HEADER_SIZE];
	seg_header_encode(&h, hb);
	int r = store_io_write_all(s->io, fd, hb, sizeof(hb), 0);
	if (r == 0)
		r = s->io->fsync(s->io, fd);
	if (r == 0)
		r = s->io->fsync_dir(s->io, s->dir);
	if (r < 0) {
		s->io->close(s->io, fd);
		s->io->unlink(s->io, path);
		return sl_err_set(err, sl_code_from_errno(-r), "create %s: %s", path, strerror(-r));
	}
	if ((r = ids_add(s, id)) < 0) {
		s->io->close(s->io, fd);
		return sl_err_set(err, r, "out of memory");
	}
	s->cur_fd = fd;
	s->cur_id = id;
	s->tail = SEG_HEADER_SIZE;
	s->wtail = SEG_HEADER_SIZE;
	s->falloc = 0;
	s->synced = SEG_HEADER_SIZE;
	s->kicked = SEG_HEADER_SIZE;
	s->fsize = SEG_HEADER_SIZE;
	s->bytes += SEG_HEADER_SIZE;
	s->nrecords = 0;
	return 0;
}

/* The aligned blocks [start, aend) a direct write of a record at `at`
 * covers: pre bytes of earlier records before it, zeros after its end. */
typedef struct dlayout {
	uint64_t start, end, aend;
	size_t pre, total;
} dlayout;

static dlayout direct_layout(uint64_t at, size_t hlen, uint32_t len)
{
	const uint64_t A = STORE_IO_DIRECT_ALIGN;
	dlayout L = { .start = at & ~(A - 1), .end = at + hlen + len };
	L.aend = (L.end + A - 1) & ~(A - 1);
	L.pre = (size_t)(at - L.start);
	L.total = (size_t)(L.aend - L.start);
	return L;
}

/* Makes *buf an aligned buffer of at least n bytes. 0, or -ENOMEM. */
static int aligned_reserve(uint8_t **buf, size_t *cap, size_t n)
{
	if (*cap >= n)
		return 0;
	void *p = NULL;
	if (posix_memalign(&p, STORE_IO_DIRECT_ALIGN, n) != 0)
		return -ENOMEM;
	free(*buf);
	*buf = p;
	*cap = n;
	return 0;
}

/* Lays the record out in b after the L.pre bytes already there. */
static void direct_fill(uint8_t *b, const dlayout *L, const uint8_t *head, size_t hlen,
			const void *data, uint32_t len)
{
	memcpy(b + L->pre, head, hlen);
	memcpy(b + L->pre + hlen, data, len);
	memset(b + L->pre + hlen + len, 0, (size_t)(L->aend - L->end));
}

/* Writes the record (head, then data) at `at` with O_DIRECT: the aligned
 * blocks covering it are staged in dbuf, the bytes before `at` in its first
 * block read back from the file (earlier records, rewritten unchanged), the
 * bytes after the record zeros. 1 if O_DIRECT is unavailable here (the
 * caller writes it the plain way), 0 when written, -errno on failure. Under
 * s->mu, like every write to the open segment. */
static int append_direct_locked(store *s, uint64_t at, const uint8_t *head, size_t hlen,
				const void *data, uint32_t len)
{
	dlayout L = direct_layout(at, hlen, len);
	if (aligned_reserve(&s->dbuf, &s->dcap, L.total) < 0)
		return 1;
	assert(at <= s->fsize);
	int r = L.pre ? store_io_read_all(s->io, s->cur_fd, s->dbuf, L.pre, (off_t)L.start) : 0;
	if (r < 0)
		return r;
	direct_fill(s->dbuf, &L, head, hlen, data, len);
	if (s->io->direct(s->io, s->cur_fd, 1) < 0) {
		s->no_direct = 1;
		return 1;
	}
	r = store_io_write_all(s->io, s->cur_fd, s->dbuf, L.total, (off_t)L.start);
	if (s->io->direct(s->io, s->cur_fd, 0) < 0)
		s->broken = 1; /* later plain writes would fail their alignment */
	if (r == -EINVAL) {
		s->no_direct = 1; /* O_DIRECT refused it: the plain write redoes it all */
		return 1;
	}
	if (r == 0 && L.aend > s->fsize)
		s->fsize = L.aend;
	return r;
}

/* The writer thread: writes the staged direct appends, oldest first. The
 * open segment stays open meanwhile: seals and closes wait for the queue. */
static void *writer_main(void *arg)
{
	store *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (s->wqn == 0 && !s->wstop)
			pthread_cond_wait(&s->wcv, &s->mu);
		if (s->wqn == 0)
			break;
		int k = s->wqh, fd = s->cur_fd, skip = s->werr != 0;
		pthread_mutex_unlock(&s->mu);
		int r = skip ? 0
			     : store_io_write_all(s->io, fd, s->wq[k].buf, s->wq[k].n,
						  (off_t)s->wq[k].off);
		pthread_mutex_lock(&s->mu);
		if (r < 0 && !s->werr)
			s->werr = r;
		if (!s->werr)
			s->wtail = s->wq[k].end;
		s->wqh = (s->wqh + 1) % STORE_WQ;
		s->wqn--;
		atomic_store(&s->wqueued, s->wqn);
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Allocates the open segment's blocks ahead of staged writes, so a full disk
 * fails the append that meets it (and nothing else) instead of a queued
 * write. 0, or -errno (-ENOSPC). */
static int falloc_locked(store *s, uint64_t upto)
{
	if (upto <= s->falloc)
		return 0;
	uint64_t ahead = upto + (32u << 20);
	if (ahead > s->seg_max + (8u << 20))
		ahead = upto;
	int r = s->io->fallocate(s->io, s->cur_fd, (off_t)ahead);
	if (r == -ENOSPC && ahead > upto)
		r = s->io->fallocate(s->io, s->cur_fd, (off_t)(ahead = upto));
	if (r == -ENOSPC || r == -EDQUOT || r == -EFBIG)
		return r;
	if (r < 0) {
		s->falloc = UINT64_MAX; /* nothing to reserve with: writes find out */
		return 0;
	}
	s->falloc = ahead;
	if (ahead > s->fsize)
		s->fsize = ahead;
	return 0;
}

/* Stages the record (head, then data) at `at` for the writer thread, laid
 * out as append_direct_locked writes it; the bytes before `at` in its first
 * block come from the previous staged record (tblk) or, when the previous
 * record was written plainly (the queue is then empty), from the file. The
 * caller made sure a queue slot is free. 0 when staged, 1 to write it the
 * plain way, -errno on failure (nothing staged). */
static int append_staged_locked(store *s, uint64_t at, const uint8_t *head, size_t hlen,
				const void *data, uint32_t len)
{
	const uint64_t A = STORE_IO_DIRECT_ALIGN;
	dlayout L = direct_layout(at, hlen, len);
	int k = (s->wqh + s->wqn) % STORE_WQ;
	assert(s->wqn < STORE_WQ);
	if (aligned_reserve(&s->wq[k].buf, &s->wq[k].cap, L.total) < 0)
		return -ENOMEM; /* not 1: the plain way needs an empty queue */
	uint8_t *b = s->wq[k].buf;
	if (L.pre && s->tblk_tail == at && s->tblk_id == s->cur_id) {
		memcpy(b, s->tblk, L.pre);
	} else if (L.pre) {
		assert(s->wqn == 0 && !s->dir_on);
		int r = store_io_read_all(s->io, s->cur_fd, b, L.pre, (off_t)L.start);
		if (r < 0)
			return r;
	}
	int r = falloc_locked(s, L.aend);
	if (r < 0)
		return r;
	if (!s->dir_on) {
		if (s->io->direct(s->io, s->cur_fd, 1) < 0) {
			s->no_direct = 1;
			return 1;
		}
		s->dir_on = 1;
	}
	if (!s->wstarted) {
		s->wstop = 0;
		if (pthread_create(&s->wthr, NULL, writer_main, s) != 0)
			return 1; /* written the plain way (which turns O_DIRECT off) */
		s->wstarted = 1;
	}
	direct_fill(b, &L, head, hlen, data, len);
	memcpy(s->tblk, b + L.total - A, A);
	s->tblk_id = s->cur_id;
	s->tblk_tail = L.end;
	s->wq[k].n = L.total;
	s->wq[k].off = L.start;
	s->wq[k].end = L.end;
	s->wqn++;
	atomic_store(&s->wqueued, s->wqn);
	if (L.aend > s->fsize)
		s->fsize = L.aend;
	pthread_cond_signal(&s->wcv);
	return 0;
}

int store_append(store *s, int type, const uint8_t *hash, const void *data, uint32_t len,
		 store_loc *loc, store_pos *end, sl_err *err)
{
	int cold = (type & STORE_APPEND_COLD) != 0;
	type &= ~STORE_APPEND_COLD;
	assert(type == SEG_REC_CHUNK || type == SEG_REC_JOURNAL);
	uint32_t extra = type == SEG_REC_CHUNK ? 32 : 0;
	if (len > SEG_MAX_PAYLOAD - extra)
		return sl_err_set(err, SL_EINVAL, "record of %u bytes too large", len);
	uint8_t head[SEG_REC_HEADER + 32];
	uint32_t crc = type == SEG_REC_CHUNK ? sl_crc32c(sl_crc32c(0, hash, 32), data, len)
					     : sl_crc32c(0, data, len);
	seg_rec_encode(type, len + extra, crc, head);
	if (extra)
		memcpy(head + SEG_REC_HEADER, hash, 32);
	uint64_t need = SEG_REC_HEADER + extra + (uint64_t)len;

	int direct = cold && type == SEG_REC_CHUNK && len >= STORE_DIRECT_MIN && s->io->direct;
	pthread_mutex_lock(&s->mu);
	int rc = 0;
	/* Wait first, decide after, since a wait lets other appends in: a
	 * staged direct append needs a free queue slot; anything else (a plain
	 * write, the first direct write, which finds out whether O_DIRECT works
	 * here) and a seal need an empty queue. Nothing after the loop waits. */
	for (;;) {
		if (s->broken || s->werr) {
			rc = sl_err_set(err, SL_EIO,
					"segment store is read-only after an I/O failure; "
					"restart to recover");
			goto out;
		}
		int staged = direct && !s->no_direct && s->direct_ok;
		if (s->cur_fd >= 0 && s->tail > SEG_HEADER_SIZE && s->tail + need > s->seg_max) {
			if (s->wqn > 0 || s->syncing > 0) {
				pthread_cond_wait(&s->cv, &s->mu);
				continue;
			}
			if ((rc = seal_locked(s, err)) < 0)
				goto out;
			continue;
		}
		if (!(staged ? s->wqn == STORE_WQ : s->wqn > 0))
			break;
		pthread_cond_wait(&s->cv, &s->mu);
	}
	if (s->cur_fd < 0 && (rc = create_locked(s, err)) < 0)
		goto out;
	uint64_t at = s->tail;
	int r = 1;
	int staged = direct && !s->no_direct && s->direct_ok;
	if (staged)
		r = append_staged_locked(s, at, head, SEG_REC_HEADER + extra, data, len);
	else if (direct && !s->no_direct &&
		 (r = append_direct_locked(s, at, head, SEG_REC_HEADER + extra, data, len)) == 0) {
		s->direct_ok = 1; /* later direct appends are staged: dbuf is done */
		free(s->dbuf);
		s->dbuf = NULL;
		s->dcap = 0;
	}
	if (r == 1) {
		staged = 0;
		drain_locked(s); /* empty already: turns O_DIRECT off */
		r = store_io_write_all(s->io, s->cur_fd, head, SEG_REC_HEADER + extra, (off_t)at);
		if (r == 0)
			r = store_io_write_all(s->io, s->cur_fd, data, len,
					       (off_t)(at + SEG_REC_HEADER + extra));
		if (r == 0 && at + need > s->fsize)
			s->fsize = at + need;
	}
	if (r < 0) {
		/* a staged append failed before anything was queued or written */
		if (!staged && s->io->ftruncate(s->io, s->cur_fd, (off_t)at) < 0)
			s->broken = 1;
		else if (!staged)
			s->fsize = s->falloc = at; /* the space allocated ahead is cut too */
		rc = sl_err_set(err, sl_code_from_errno(-r), "write segment: %s", strerror(-r));
		goto out;
	}
	s->tail = at + need;
	if (!staged)
		s->wtail = s->tail; /* the writer thread moves it for staged ones */
	s->bytes += need;
	s->nrecords++;
	/* Start writing large appends back now, so the disk works while the
	 * writer goes on: otherwise nothing is written until the seal or commit
	 * fsync (with much RAM, the kernel's own writeback starts only after
	 * gigabytes), and that fsync then writes it all while appends wait. */
	if (s->io->writeback && s->tail > s->kicked + STORE_WRITEBACK_BYTES) {
		s->io->writeback(s->io, s->cur_fd, (off_t)s->kicked, (off_t)(s->tail - s->kicked));
		s->kicked = s->tail;
	}
	s->last_append_ms = now_ms();
	if (loc)
		*loc = (store_loc){ s->cur_id, at + SEG_REC_HEADER + extra, len };
	if (end)
		*end = (store_pos){ s->cur_id, s->tail };
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* Under mu: waits until the records of the open segment seg below end are
 * written (a staged one may still hold them). 0, or -EIO when the segment is
 * still open and a failed staged write left them unwritten; 0 as well when
 * seg is no longer the open segment (sealed: all of it is written). */
static int written_locked(store *s, uint64_t seg, uint64_t end)
{
	while (s->cur_fd >= 0 && s->cur_id == seg && s->wtail < end && !s->werr)
		pthread_cond_wait(&s->cv, &s->mu);
	return s->cur_fd >= 0 && s->cur_id == seg && s->wtail < end ? -EIO : 0;
}

int store_sync(store *s, sl_err *err)
{
	pthread_mutex_lock(&s->mu);
	/* the staged writes before this call land first (later ones may go on
	 * being staged meanwhile: this waits for its own target only) */
	uint64_t id = s->cur_id, target = s->tail;
	(void)written_locked(s, id, target);
	if (s->werr && s->cur_fd >= 0 && s->cur_id == id) {
		int e = s->werr;
		pthread_mutex_unlock(&s->mu);
		return sl_err_set(err, sl_code_from_errno(-e), "write segment: %s", strerror(-e));
	}
	if (s->cur_fd < 0 || s->cur_id != id || s->synced >= target) {
		pthread_mutex_unlock(&s->mu);
		return 0; /* sealed meanwhile (a seal syncs), or nothing new */
	}
	int fd = s->cur_fd;
	s->syncing++;
	pthread_mutex_unlock(&s->mu);
	int r = s->io->fsync(s->io, fd);
	pthread_mutex_lock(&s->mu);
	s->syncing--;
	if (r == 0 && target > s->synced)
		s->synced = target;
	if (r < 0)
		s->broken = 1; /* after a failed fsync the page state is unknown */
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (r < 0)
		return sl_err_set(err, sl_code_from_errno(-r), "fsync segment: %s", strerror(-r));
	return 0;
}

store_pos store_tail(store *s)
{
	pthread_mutex_lock(&s->mu);
	store_pos p = { s->cur_fd >= 0 ? s->cur_id : (s->nids ? s->ids[s->nids - 1] : 0),
			s->cur_fd >= 0 ? s->tail : 0 };
	if (s->cur_fd < 0 && s->nids)
		p = (store_pos){ s->ids[s->nids - 1] + 1, 0 };
	pthread_mutex_unlock(&s->mu);
	return p;
}

/* Waits until [.., end) of segment seg is written, when a staged direct
 * append may still hold it (only appends that returned hand out locations,
 * so the queue counter, read without the lock, is enough to skip this).
 * -EIO if the write that held it failed. */
static int wait_written(store *s, uint64_t seg, uint64_t end)
{
	if (atomic_load(&s->wqueued) == 0)
		return 0;
	pthread_mutex_lock(&s->mu);
	int r = written_locked(s, seg, end);
	pthread_mutex_unlock(&s->mu);
	return r;
}

/* Opens segment seg for reading once its bytes up to end are written (path
 * gets its name; off is for the messages): the fd, or an SL_ code. */
static int open_read(store *s, uint64_t seg, uint64_t off, uint64_t end, char *path, size_t pn,
		     sl_err *err)
{
	seg_path(s, seg, path, pn);
	if (wait_written(s, seg, end) < 0)
		return sl_err_set(err, SL_EIO, "read %s at %" PRIu64 ": its write failed", path,
				  off);
	int fd = s->io->open(s->io, path, O_RDONLY, 0);
	if (fd < 0)
		return sl_err_set(err, fd == -ENOENT ? SL_ECORRUPT : sl_code_from_errno(-fd),
				  "open %s: %s", path, strerror(-fd));
	return fd;
}

int store_read(store *s, uint64_t seg, uint64_t off, void *buf, uint32_t len, sl_err *err)
{
	char path[4096];
	int fd = open_read(s, seg, off, off + len, path, sizeof(path), err);
	if (fd < 0)
		return fd;
	int r = store_io_read_all(s->io, fd, buf, len, (off_t)off);
	s->io->close(s->io, fd);
	if (r < 0)
		return sl_err_set(err, r == -EIO ? SL_EIO : sl_code_from_errno(-r),
				  "read %s at %" PRIu64 ": %s", path, off, strerror(-r));
	return 0;
}

void store_advise(store *s, store_loc loc)
{
	char path[4096];
	seg_path(s, loc.seg, path, sizeof(path));
	int fd = s->io->open(s->io, path, O_RDONLY, 0);
	if (fd < 0)
		return; /* the read that follows reports it */
	uint64_t from = loc.off > SEG_REC_HEADER + 32 ? loc.off - SEG_REC_HEADER - 32 : 0;
	(void)posix_fadvise(fd, (off_t)from, (off_t)(loc.off + loc.len - from),
			    POSIX_FADV_WILLNEED);
	s->io->close(s->io, fd);
}

/* Checks a chunk record read back: head is its header and hash, data its
 * loc.len data bytes. */
static int check_chunk(const char *path, store_loc loc, const uint8_t *head, const uint8_t hash[32],
		       const void *data, sl_err *err)
{
	seg_rec rec;
	if (seg_rec_decode(head, SEG_REC_HEADER, &rec) < 0 || rec.type != SEG_REC_CHUNK ||
	    rec.payload_len != loc.len + 32 || memcmp(head + SEG_REC_HEADER, hash, 32) != 0 ||
	    sl_crc32c(sl_crc32c(0, head + SEG_REC_HEADER, 32), data, loc.len) != rec.payload_crc)
		return sl_err_set(err, SL_ECORRUPT,
				  "stored chunk in %s at %" PRIu64 " is damaged (checksum "
				  "mismatch)",
				  path, loc.off);
	return 0;
}

int store_read_chunk(store *s, store_loc loc, const uint8_t hash[32], void *buf, sl_err *err)
{
	uint8_t head[SEG_REC_HEADER + 32];
	if (loc.off < sizeof(head))
		return sl_err_set(err, SL_ECORRUPT, "bad chunk location");
	char path[4096];
	int fd = open_read(s, loc.seg, loc.off, loc.off + loc.len, path, sizeof(path), err);
	if (fd < 0)
		return fd;
	int r = store_io_read_all(s->io, fd, head, sizeof(head), (off_t)(loc.off - sizeof(head)));
	if (r == 0)
		r = store_io_read_all(s->io, fd, buf, loc.len, (off_t)loc.off);
	s->io->close(s->io, fd);
	if (r < 0)
		return sl_err_set(err, r == -EIO ? SL_EIO : sl_code_from_errno(-r),
				  "read %s at %" PRIu64 ": %s", path, loc.off, strerror(-r));
	return check_chunk(path, loc, head, hash, buf, err);
}

int store_read_chunk_direct(store *s, store_loc loc, const uint8_t hash[32], uint8_t *buf,
			    size_t *off, sl_err *err)
{
	const uint64_t A = STORE_IO_DIRECT_ALIGN;
	const uint64_t hl = SEG_REC_HEADER + 32;
	if (!s->io->direct || atomic_load(&s->no_direct_read) || ((uintptr_t)buf & (A - 1)))
		return 1;
	if (loc.off < hl)
		return sl_err_set(err, SL_ECORRUPT, "bad chunk location");
	char path[4096];
	int fd = open_read(s, loc.seg, loc.off, loc.off + loc.len, path, sizeof(path), err);
	if (fd < 0)
		return fd;
	/* all of it in the page cache already (written the plain way, or read
	 * lately): reading it there is a copy, and the disk is not asked */
	if (s->io->cached &&
	    s->io->cached(s->io, fd, (off_t)(loc.off - hl), (off_t)(hl + loc.len)) == 1) {
		s->io->close(s->io, fd);
		return 1;
	}
	if (s->io->direct(s->io, fd, 1) < 0) {
		s->io->close(s->io, fd);
		atomic_store(&s->no_direct_read, 1);
		return 1;
	}
	/* whole blocks around the record; the end may lie past the file's end */
	uint64_t from = (loc.off - hl) / A * A;
	uint64_t want = loc.off + loc.len - from;
	size_t n = (size_t)((want + A - 1) / A * A);
	size_t got = 0;
	int r = 0;
	while (got < want) {
		ssize_t k = s->io->pread(s->io, fd, buf + got, n - got, (off_t)(from + got));
		if (k == -EINVAL && got == 0) {
			/* the filesystem took O_DIRECT but not this alignment */
			s->io->close(s->io, fd);
			atomic_store(&s->no_direct_read, 1);
			return 1;
		}
		if (k <= 0) {
			r = k < 0 ? (int)k : -EIO;
			break;
		}
		got += (size_t)k;
	}
	s->io->close(s->io, fd);
	if (r < 0)
		return sl_err_set(err, r == -EIO ? SL_EIO : sl_code_from_errno(-r),
				  "read %s at %" PRIu64 ": %s", path, loc.off, strerror(-r));
	*off = (size_t)(loc.off - from);
	return check_chunk(path, loc, buf + *off - hl, hash, buf + *off, err);
}

void store_tick(store *s)
{
	pthread_mutex_lock(&s->mu);
	if (s->cur_fd >= 0 && s->tail > SEG_HEADER_SIZE && s->synced >= s->tail &&
	    now_ms() - s->last_append_ms > (int64_t)s->idle_sec * 1000)
		(void)seal_locked(s, NULL);
	pthread_mutex_unlock(&s->mu);
}

int store_seal(store *s, sl_err *err)
{
	pthread_mutex_lock(&s->mu);
	int rc = 0;
	if (s->cur_fd >= 0 && s->tail > SEG_HEADER_SIZE)
		rc = seal_locked(s, err);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int store_scan(store *s, store_pos from, store_scan_fn fn, void *ctx, sl_err *err)
{
	pthread_mutex_lock(&s->mu);
	size_t n = s->nids;
	uint64_t *ids = malloc((n ? n : 1) * sizeof(*ids));
	if (ids && n)
		memcpy(ids, s->ids, n * sizeof(*ids));
	pthread_mutex_unlock(&s->mu);
	if (!ids)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	int rc = 0, corrupt = 0;
	uint8_t *buf = NULL;
	size_t cap = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (ids[i] < from.seg)
			continue;
		char path[4096];
		seg_path(s, ids[i], path, sizeof(path));
		int fd = s->io->open(s->io, path, O_RDONLY, 0);
		if (fd < 0) {
			rc = sl_err_set(err, sl_code_from_errno(-fd), "open %s: %s", path,
					strerror(-fd));
			break;
		}
		/* the open segment ends at its tail: past it lie records being
		 * written or a direct append's zero padding; the staged records
		 * before it are waited for */
		pthread_mutex_lock(&s->mu);
		(void)written_locked(s, ids[i], s->tail); /* a failed write: up to wtail */
		uint64_t size = (uint64_t)s->io->size(s->io, fd);
		if (s->cur_fd >= 0 && s->cur_id == ids[i] && size > s->wtail)
			size = s->wtail;
		pthread_mutex_unlock(&s->mu);
		uint64_t pos = SEG_HEADER_SIZE;
		if (ids[i] == from.seg && from.off > pos)
			pos = from.off;
		while (pos < size) {
			uint8_t h[SEG_REC_HEADER + 32];
			seg_rec r;
			if (pos + SEG_REC_HEADER > size ||
			    store_io_read_all(s->io, fd, h, SEG_REC_HEADER, (off_t)pos) < 0 ||
			    seg_rec_decode(h, SEG_REC_HEADER, &r) < 0 ||
			    pos + SEG_REC_HEADER + r.payload_len > size) {
				if (!corrupt)
					sl_err_set(err, SL_ECORRUPT,
						   "segment %s: invalid record at offset %" PRIu64,
						   path, pos);
				corrupt = 1;
				break;
			}
			uint64_t next = pos + SEG_REC_HEADER + r.payload_len;
			store_pos end = { ids[i], next };
			if (r.type == SEG_REC_CHUNK) {
				/* the header CRC vouches for the record's frame; the
				 * data CRC is checked when the chunk is read */
				if (store_io_read_all(s->io, fd, h + SEG_REC_HEADER, 32,
						      (off_t)(pos + SEG_REC_HEADER)) < 0) {
					if (!corrupt)
						sl_err_set(err, SL_ECORRUPT,
							   "segment %s: bad chunk record at "
							   "%" PRIu64,
							   path, pos);
					corrupt = 1;
					break;
				}
				store_loc loc = { ids[i], pos + SEG_REC_HEADER + 32,
						  r.payload_len - 32 };
				rc = fn(ctx, r.type, h + SEG_REC_HEADER, NULL, loc, end);
			} else if (r.type == SEG_REC_JOURNAL) {
				if (cap < r.payload_len + 1) {
					free(buf);
					cap = r.payload_len + 1;
					buf = malloc(cap);
					if (!buf) {
						cap = 0;
						rc = sl_err_set(err, SL_ENOMEM, "out of memory");
						break;
					}
				}
				if (store_io_read_all(s->io, fd, buf, r.payload_len,
						      (off_t)(pos + SEG_REC_HEADER)) < 0 ||
				    seg_rec_verify(&r, buf) < 0) {
					if (!corrupt)
						sl_err_set(err, SL_ECORRUPT,
							   "segment %s: bad journal record at "
							   "%" PRIu64,
							   path, pos);
					corrupt = 1;
					break;
				}
				buf[r.payload_len] = '\0';
				store_loc loc = { ids[i], pos + SEG_REC_HEADER, r.payload_len };
				rc = fn(ctx, r.type, NULL, buf, loc, end);
			} else {
				break; /* footer: sealed */
			}
			pos = next;
		}
		s->io->close(s->io, fd);
	}
	free(buf);
	free(ids);
	if (rc == 0 && corrupt)
		return SL_ECORRUPT;
	return rc;
}

void store_stats_get(store *s, store_stats *out)
{
	pthread_mutex_lock(&s->mu);
	out->segments = s->nids;
	out->bytes = s->bytes;
	pthread_mutex_unlock(&s->mu);
}

void store_close(store *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	while (s->syncing > 0 || s->wqn > 0)
		pthread_cond_wait(&s->cv, &s->mu);
	drain_locked(s);
	if (s->wstarted) {
		s->wstop = 1;
		pthread_cond_signal(&s->wcv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->wthr, NULL);
		pthread_mutex_lock(&s->mu);
		s->wstarted = 0;
	}
	if (s->werr && s->cur_fd >= 0) {
		/* a staged write failed: leave the file as it is for recovery */
		s->io->close(s->io, s->cur_fd);
		s->cur_fd = -1;
	}
	if (s->cur_fd >= 0) {
		if (s->fsize > s->tail && s->io->ftruncate(s->io, s->cur_fd, (off_t)s->tail) == 0)
			s->synced = 0; /* the new size wants an fsync too */
		if (s->synced < s->tail)
			s->io->fsync(s->io, s->cur_fd);
		s->io->close(s->io, s->cur_fd);
	}
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	pthread_cond_destroy(&s->wcv);
	for (int k = 0; k < STORE_WQ; k++)
		free(s->wq[k].buf);
	free(s->ids);
	free(s->dbuf);
	free(s->dir);
	free(s);
}

void store_segment_path(store *s, uint64_t id, char *out, size_t n)
{
	seg_path(s, id, out, n);
}

int store_segments(store *s, uint64_t **ids, uint64_t **sizes, size_t *n, uint64_t *open_id,
		   sl_err *err)
{
	pthread_mutex_lock(&s->mu);
	size_t cnt = s->nids;
	*ids = malloc((cnt ? cnt : 1) * sizeof(**ids));
	*sizes = malloc((cnt ? cnt : 1) * sizeof(**sizes));
	if (!*ids || !*sizes) {
		pthread_mutex_unlock(&s->mu);
		free(*ids);
		free(*sizes);
		*ids = *sizes = NULL;
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	if (cnt)
		memcpy(*ids, s->ids, cnt * sizeof(**ids));
	*open_id = s->cur_fd >= 0 ? s->cur_id : 0;
	uint64_t cur_tail = s->tail;
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < cnt; i++) {
		char path[4096];
		struct stat st;
		seg_path(s, (*ids)[i], path, sizeof(path));
		(*sizes)[i] = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
		if ((*ids)[i] == *open_id)
			(*sizes)[i] = cur_tail;
	}
	*n = cnt;
	return 0;
}

int store_remove(store *s, uint64_t id, sl_err *err)
{
	pthread_mutex_lock(&s->mu);
	if (s->cur_fd >= 0 && id == s->cur_id) {
		pthread_mutex_unlock(&s->mu);
		return sl_err_set(err, SL_EINVAL, "segment %" PRIu64 " is still open", id);
	}
	size_t i;
	for (i = 0; i < s->nids && s->ids[i] != id; i++)
		;
	if (i == s->nids) {
		pthread_mutex_unlock(&s->mu);
		return sl_err_set(err, SL_ENOKEY, "no segment %" PRIu64, id);
	}
	char path[4096];
	struct stat st;
	seg_path(s, id, path, sizeof(path));
	uint64_t size = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
	int r = s->io->unlink(s->io, path);
	if (r == 0) {
		memmove(&s->ids[i], &s->ids[i + 1], (s->nids - i - 1) * sizeof(*s->ids));
		s->nids--;
		s->bytes = s->bytes > size ? s->bytes - size : 0;
		s->io->fsync_dir(s->io, s->dir);
	}
	pthread_mutex_unlock(&s->mu);
	if (r < 0)
		return sl_err_set(err, sl_code_from_errno(-r), "unlink %s: %s", path, strerror(-r));
	return 0;
}
