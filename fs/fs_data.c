/*
 * fs_data.c - the write buffer of an open file, built on the core chunk API.
 * A file is a list of chunk refs (the base version's chunks from
 * core_get_chunks); a write materialises only the chunks it touches as
 * in-memory buffers, dirty buffers go back to the core with core_chunk_put
 * when memory bounds are hit, and a commit is one core_put_chunks (a new
 * version sharing every untouched chunk). Partial writes into stored chunks
 * past the memory bound go to the file's spill instead: an unlinked scratch
 * file in DATA/fs-spill holding dirty 4 KiB pages at their file offsets, with
 * a page bitmap per chunk; a commit folds each spilled chunk (stored bytes
 * plus its pages) into a new stored chunk. So a random 4 KiB write costs one
 * 4 KiB pwrite, and each touched chunk is hashed and stored once per commit.
 * Not here: FUSE replies, inode names, metadata meaning (fs_attr.c).
 */
#include "fs/fs_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK ((uint64_t)CORE_CHUNK_SIZE)
#define PAGE ((uint32_t)FS_SPILL_PAGE)
#define OVL_WORDS (CORE_CHUNK_SIZE / FS_SPILL_PAGE / 64)

static int fs_isHole(const core_chunkref *r)
{
	for (size_t i = 0; i < sizeof(r->hash); i++)
		if (r->hash[i])
			return 0;
	return 1;
}

/* Valid length of chunk i at the current size. */
static uint32_t fs_chunkLen(const fs_data *d, size_t i)
{
	uint64_t start = (uint64_t)i * CHUNK;
	if (start >= d->size)
		return 0;
	uint64_t rem = d->size - start;
	return rem > CHUNK ? (uint32_t)CHUNK : (uint32_t)rem;
}

/* Caller made sure no digest task of d is pending. */
static void fs_md5Reset(fs_data *d)
{
	EVP_DigestInit_ex(d->md5, EVP_md5(), NULL);
	d->md5_off = d->md5_sub = d->md5_done = 0;
	d->seq = 1;
}

/* ---- digest: the MD5 of a sequentially written file, off the request thread ---- */

typedef struct fs_md5task {
	fs_data *d;
	const uint8_t *buf; /* a dirty buffer's bytes: unchanged until digested */
	uint32_t len;
	struct fs_md5task *next;
} fs_md5task;

static void *fs_md5Main(void *arg)
{
	fs_ctx *m = arg;
	pthread_mutex_lock(&m->mdlock);
	for (;;) {
		while (!m->mdhead && !m->mdstop)
			pthread_cond_wait(&m->mdcond, &m->mdlock);
		fs_md5task *t = m->mdhead;
		if (!t)
			break; /* stopping, and every task ran */
		m->mdhead = t->next;
		if (!m->mdhead)
			m->mdtail = NULL;
		pthread_mutex_unlock(&m->mdlock);
		EVP_DigestUpdate(t->d->md5, t->buf, t->len);
		pthread_mutex_lock(&m->mdlock);
		t->d->md5_done += t->len;
		pthread_cond_broadcast(&m->mdcond);
		free(t);
	}
	pthread_mutex_unlock(&m->mdlock);
	return NULL;
}

/* Waits until the first upto bytes handed to the digest are digested. */
static void fs_md5Wait(fs_ctx *m, fs_data *d, uint64_t upto)
{
	if (upto > d->md5_sub)
		upto = d->md5_sub;
	if (!m->md5_init)
		return; /* no thread: everything was digested inline */
	pthread_mutex_lock(&m->mdlock);
	while (d->md5_done < upto)
		pthread_cond_wait(&m->mdcond, &m->mdlock);
	pthread_mutex_unlock(&m->mdlock);
}

static void fs_md5WaitAll(fs_ctx *m, fs_data *d)
{
	fs_md5Wait(m, d, d->md5_sub);
}

/* Digests buf (the next len bytes of the stream) in the background, or here. */
static void fs_md5Submit(fs_ctx *m, fs_data *d, const uint8_t *buf, uint32_t len)
{
	fs_md5task *t = m->md5_started ? malloc(sizeof(*t)) : NULL;
	if (!t) {
		fs_md5WaitAll(m, d);
		EVP_DigestUpdate(d->md5, buf, len);
		d->md5_sub += len;
		if (m->md5_init)
			pthread_mutex_lock(&m->mdlock);
		d->md5_done += len;
		if (m->md5_init)
			pthread_mutex_unlock(&m->mdlock);
		return;
	}
	t->d = d;
	t->buf = buf;
	t->len = len;
	t->next = NULL;
	d->md5_sub += len;
	pthread_mutex_lock(&m->mdlock);
	if (m->mdtail)
		m->mdtail->next = t;
	else
		m->mdhead = t;
	m->mdtail = t;
	pthread_cond_signal(&m->mdcond);
	pthread_mutex_unlock(&m->mdlock);
}

/* Hands the sequentially written bytes to the digest: whole chunks (final
 * once written past) or, at a commit, everything written. */
static int fs_md5Advance(fs_ctx *m, fs_data *d, int all)
{
	uint64_t limit = all ? d->md5_off : d->md5_off / CHUNK * CHUNK;
	while (d->md5_sub < limit) {
		size_t i = (size_t)(d->md5_sub / CHUNK);
		uint32_t coff = (uint32_t)(d->md5_sub % CHUNK);
		uint64_t cend = (uint64_t)(i + 1) * CHUNK;
		uint32_t n = (uint32_t)((limit < cend ? limit : cend) - d->md5_sub);
		if (d->bufs[i]) {
			fs_md5Submit(m, d, d->bufs[i] + coff, n);
			continue;
		}
		/* no buffer any more (evicted): read the bytes back, digest here */
		uint8_t *tmp = malloc(n);
		if (!tmp)
			return -ENOMEM;
		ssize_t got = fs_data_read(m, d, tmp, n, d->md5_sub);
		if (got != (ssize_t)n) {
			free(tmp);
			return got < 0 ? (int)got : -EIO;
		}
		fs_md5WaitAll(m, d);
		fs_md5Submit(m, d, tmp, n);
		fs_md5WaitAll(m, d);
		free(tmp);
	}
	return 0;
}

int fs_data_new(fs_data **out)
{
	fs_data *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->md5 = EVP_MD_CTX_new();
	if (!d->md5) {
		free(d);
		return -ENOMEM;
	}
	pthread_rwlock_init(&d->lock, NULL);
	d->spill_fd = -1;
	fs_md5Reset(d);
	clock_gettime(CLOCK_REALTIME, &d->wmtime);
	*out = d;
	return 0;
}

/* Forgets chunk i's spilled pages (their spill bytes become garbage). */
static void fs_ovlDrop(fs_data *d, size_t i)
{
	if (!d->ovl[i])
		return;
	free(d->ovl[i]);
	d->ovl[i] = NULL;
	d->novl--;
}

/* Drops chunk i's dirty state (buffer or spilled pages); refs[i] stays. */
static void fs_dropBuf(fs_ctx *m, fs_data *d, size_t i)
{
	fs_ovlDrop(d, i);
	if (!d->bufs[i])
		return;
	if ((uint64_t)i * CHUNK < d->md5_sub)
		fs_md5Wait(m, d, (uint64_t)(i + 1) * CHUNK); /* the digest reads it */
	if (d->jobs && d->jobs[i]) {
		/* the worker still reads this buffer */
		core_chunk_job_wait(d->jobs[i], NULL, NULL);
		d->jobs[i] = NULL;
	}
	free(d->bufs[i]);
	d->bufs[i] = NULL;
	d->bcap[i] = 0;
	d->ndirty--;
	atomic_fetch_sub(&m->dirty_bytes, CHUNK);
}

void fs_data_pend(fs_ctx *m, fs_data *d)
{
	if (!atomic_exchange(&d->pending, 1))
		atomic_fetch_add(&m->npending, 1);
}

void fs_data_unpend(fs_ctx *m, fs_data *d)
{
	if (atomic_exchange(&d->pending, 0))
		atomic_fetch_sub(&m->npending, 1);
}

void fs_data_free(fs_ctx *m, fs_data *d)
{
	if (!d)
		return;
	fs_data_unpend(m, d); /* closed unstored (unlinked, or its commit failed) */
	fs_md5WaitAll(m, d);
	for (size_t i = 0; i < d->nchunks; i++)
		fs_dropBuf(m, d, i);
	free(d->refs);
	free(d->bufs);
	free(d->bcap);
	free(d->ticks);
	free(d->jobs);
	free(d->ovl);
	if (d->spill_fd >= 0)
		close(d->spill_fd);
	free(d->meta);
	EVP_MD_CTX_free(d->md5);
	pthread_rwlock_destroy(&d->lock);
	free(d);
}

static int fs_reserve(fs_data *d, size_t n)
{
	if (n <= d->cap)
		return 0;
	size_t ncap = d->cap ? d->cap : 4;
	while (ncap < n)
		ncap *= 2;
	core_chunkref *r = realloc(d->refs, ncap * sizeof(*r));
	if (!r)
		return -ENOMEM;
	d->refs = r;
	uint8_t **b = realloc(d->bufs, ncap * sizeof(*b));
	if (!b)
		return -ENOMEM;
	d->bufs = b;
	uint32_t *bc = realloc(d->bcap, ncap * sizeof(*bc));
	if (!bc)
		return -ENOMEM;
	d->bcap = bc;
	uint64_t *t = realloc(d->ticks, ncap * sizeof(*t));
	if (!t)
		return -ENOMEM;
	d->ticks = t;
	core_chunk_job **j = realloc(d->jobs, ncap * sizeof(*j));
	if (!j)
		return -ENOMEM;
	d->jobs = j;
	uint64_t **o = realloc(d->ovl, ncap * sizeof(*o));
	if (!o)
		return -ENOMEM;
	d->ovl = o;
	memset(d->ovl + d->cap, 0, (ncap - d->cap) * sizeof(*o));
	memset(d->jobs + d->cap, 0, (ncap - d->cap) * sizeof(*j));
	memset(d->refs + d->cap, 0, (ncap - d->cap) * sizeof(*r));
	memset(d->bufs + d->cap, 0, (ncap - d->cap) * sizeof(*b));
	memset(d->bcap + d->cap, 0, (ncap - d->cap) * sizeof(*bc));
	memset(d->ticks + d->cap, 0, (ncap - d->cap) * sizeof(*t));
	d->cap = ncap;
	return 0;
}

int fs_data_load(fs_ctx *m, fs_data *d, const char *bucket, const char *key)
{
	core_objinfo info = { 0 };
	core_chunkref *chunks = NULL;
	size_t n = 0;
	sl_err err;
	int r = core_get_chunks(m->c, bucket, key, NULL, &info, &chunks, &n, &err);
	if (r < 0) {
		core_objinfo_clear(&info);
		return -fs_errno(r);
	}
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += chunks[i].len;
	if (total != info.size || (n > 0 && info.size > (uint64_t)n * CHUNK)) {
		free(chunks);
		core_objinfo_clear(&info);
		return -EIO;
	}
	free(d->refs);
	d->refs = NULL;
	d->cap = d->nchunks = 0;
	if (fs_reserve(d, n) < 0) {
		free(chunks);
		core_objinfo_clear(&info);
		return -ENOMEM;
	}
	if (n)
		memcpy(d->refs, chunks, n * sizeof(*chunks));
	free(chunks);
	d->nchunks = n;
	/* Chunks shorter than CHUNK inside the file would break offset math;
	 * the core only writes full chunks except the last. */
	for (size_t i = 0; i + 1 < n; i++) {
		if (d->refs[i].len != CHUNK) {
			core_objinfo_clear(&info);
			return -EIO;
		}
	}
	d->size = info.size;
	free(d->meta);
	d->meta = strdup(info.meta ? info.meta : "{}");
	d->base_hlc = info.hlc;
	snprintf(d->base_etag, sizeof(d->base_etag), "%s", info.etag);
	d->dirty = 0;
	d->mtime_set = 0;
	if (d->size == 0)
		fs_md5Reset(d);
	else
		d->seq = 0;
	core_objinfo_clear(&info);
	return d->meta ? 0 : -ENOMEM;
}

/* Finishes a background store of chunk i: its ref becomes the stored one
 * and the buffer goes. On failure the buffer stays dirty (nothing lost). */
static int fs_settle(fs_ctx *m, fs_data *d, size_t i)
{
	if (!d->jobs || !d->jobs[i])
		return 0;
	core_chunkref ref;
	sl_err err;
	int r = core_chunk_job_wait(d->jobs[i], &ref, &err);
	d->jobs[i] = NULL;
	if (r < 0)
		return -fs_errno(r);
	d->refs[i] = ref;
	fs_dropBuf(m, d, i);
	return 0;
}

/* ---- spill: dirty pages of chunks past the memory bound ---------------------- */

static void fs_spillInit(fs_ctx *m)
{
	char dir[PATH_MAX];
	if (snprintf(dir, sizeof(dir), "%s/%s", core_dir(m->c), FS_SPILL_DIR) >= (int)sizeof(dir))
		return;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "seglake mount: no spill directory %s: %s\n", dir, strerror(errno));
		return;
	}
	/* Spill files are unlinked while in use; a name left here is from a
	 * crash between creating and unlinking one: never committed data. */
	DIR *dh = opendir(dir);
	if (!dh)
		return;
	struct dirent *de;
	while ((de = readdir(dh)))
		if (de->d_name[0] != '.')
			unlinkat(dirfd(dh), de->d_name, 0);
	closedir(dh);
	m->spill_dir = strdup(dir);
}

void fs_data_init(fs_ctx *m)
{
	fs_spillInit(m);
	pthread_mutex_init(&m->mdlock, NULL);
	pthread_cond_init(&m->mdcond, NULL);
	m->md5_init = 1;
	if (pthread_create(&m->md5_thr, NULL, fs_md5Main, m) == 0)
		m->md5_started = 1;
}

void fs_data_fini(fs_ctx *m)
{
	free(m->spill_dir);
	m->spill_dir = NULL;
	if (!m->md5_init)
		return;
	if (m->md5_started) {
		pthread_mutex_lock(&m->mdlock);
		m->mdstop = 1;
		pthread_cond_broadcast(&m->mdcond);
		pthread_mutex_unlock(&m->mdlock);
		pthread_join(m->md5_thr, NULL);
		m->md5_started = 0;
	}
	pthread_mutex_destroy(&m->mdlock);
	pthread_cond_destroy(&m->mdcond);
	m->md5_init = 0;
}

/* The file's spill fd, created on first use. */
static int fs_spillFd(fs_ctx *m, fs_data *d)
{
	if (d->spill_fd >= 0)
		return d->spill_fd;
	if (!m->spill_dir)
		return -ENOTSUP;
	int fd = open(m->spill_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/spill.XXXXXX", m->spill_dir);
		fd = mkostemp(p, O_CLOEXEC);
		if (fd < 0)
			return -errno;
		unlink(p);
	}
	d->spill_fd = fd;
	return fd;
}

static int fs_ovlHas(const uint64_t *b, size_t p)
{
	return (int)((b[p / 64] >> (p % 64)) & 1);
}

static int fs_spillRw(int fd, int wr, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = wr ? pwrite(fd, p, len, (off_t)off) : pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* a spilled page is always fully written */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Bytes [off, off+len) of chunk i's stored content: zeros past its length
 * and in holes. */
static int fs_baseRead(fs_ctx *m, fs_data *d, size_t i, uint32_t off, uint8_t *out, uint32_t len)
{
	const core_chunkref *r = &d->refs[i];
	uint32_t have = 0;
	if (!fs_isHole(r) && off < r->len)
		have = r->len - off < len ? r->len - off : len;
	if (have) {
		sl_err err;
		int rc = core_chunk_read(m->c, r, off, out, have, &err);
		if (rc < 0)
			return -fs_errno(rc);
	}
	memset(out + have, 0, len - have);
	return 0;
}

/* Reads [off, off+len) of spilled chunk i: spilled pages from the spill,
 * the rest from the stored chunk. */
static int fs_ovlRead(fs_ctx *m, fs_data *d, size_t i, uint32_t off, uint8_t *out, uint32_t len)
{
	const uint64_t *b = d->ovl[i];
	uint32_t pos = off, end = off + len;
	while (pos < end) {
		size_t p = pos / PAGE;
		int sp = fs_ovlHas(b, p);
		uint32_t run = (uint32_t)(p + 1) * PAGE;
		while (run < end && fs_ovlHas(b, run / PAGE) == sp)
			run += PAGE;
		if (run > end)
			run = end;
		int r = sp ? fs_spillRw(d->spill_fd, 0, out + (pos - off), run - pos,
					(uint64_t)i * CHUNK + pos)
			   : fs_baseRead(m, d, i, pos, out + (pos - off), run - pos);
		if (r < 0)
			return r;
		pos = run;
	}
	return 0;
}

/* Writes [coff, coff+n) of chunk i into the spill: whole pages go straight
 * from src, partial ones are merged with the page's current bytes. */
static int fs_ovlWrite(fs_ctx *m, fs_data *d, size_t i, uint32_t coff, const uint8_t *src,
		       uint32_t n)
{
	int fd = fs_spillFd(m, d);
	if (fd < 0)
		return fd;
	if (!d->ovl[i]) {
		d->ovl[i] = calloc(OVL_WORDS, sizeof(uint64_t));
		if (!d->ovl[i])
			return -ENOMEM;
		d->novl++;
	}
	uint64_t *b = d->ovl[i];
	uint64_t base = (uint64_t)i * CHUNK;
	uint32_t pos = coff, end = coff + n;
	while (pos < end) {
		size_t p = pos / PAGE;
		uint32_t pstart = (uint32_t)p * PAGE, pend = pstart + PAGE;
		int r;
		if (pos == pstart && end >= pend) {
			uint32_t run = end - end % PAGE;
			r = fs_spillRw(fd, 1, (void *)(src + (pos - coff)), run - pos, base + pos);
			if (r < 0)
				return r;
			for (size_t q = p; q < run / PAGE; q++)
				b[q / 64] |= 1ull << (q % 64);
			pos = run;
			continue;
		}
		uint8_t page[FS_SPILL_PAGE];
		r = fs_ovlRead(m, d, i, pstart, page, PAGE);
		if (r < 0)
			return r;
		uint32_t take = (end < pend ? end : pend) - pos;
		memcpy(page + (pos - pstart), src + (pos - coff), take);
		r = fs_spillRw(fd, 1, page, PAGE, base + pstart);
		if (r < 0)
			return r;
		b[p / 64] |= 1ull << (p % 64);
		pos += take;
	}
	return 0;
}

/* The full content of spilled chunk i (CHUNK bytes, zero past its length). */
static int fs_ovlBuild(fs_ctx *m, fs_data *d, size_t i, uint8_t *buf)
{
	int r = fs_ovlRead(m, d, i, 0, buf, (uint32_t)CHUNK);
	if (r < 0)
		return r;
	uint32_t len = fs_chunkLen(d, i);
	memset(buf + len, 0, CHUNK - len);
	return 0;
}

/* Turns spilled chunk i into an in-memory buffer. */
static int fs_ovlFold(fs_ctx *m, fs_data *d, size_t i)
{
	uint8_t *buf = malloc(CHUNK);
	if (!buf)
		return -ENOMEM;
	int r = fs_ovlBuild(m, d, i, buf);
	if (r < 0) {
		free(buf);
		return r;
	}
	fs_ovlDrop(d, i);
	d->bufs[i] = buf;
	d->bcap[i] = (uint32_t)CHUNK;
	d->ticks[i] = ++d->tick;
	d->ndirty++;
	atomic_fetch_add(&m->dirty_bytes, CHUNK);
	return 0;
}

/* Stores spilled chunk i (scratch: a CHUNK buffer); refs[i] becomes it. */
static int fs_ovlStore(fs_ctx *m, fs_data *d, size_t i, uint8_t *scratch)
{
	int r = fs_ovlBuild(m, d, i, scratch);
	if (r < 0)
		return r;
	core_chunkref ref;
	sl_err err;
	r = core_chunk_put(m->c, scratch, fs_chunkLen(d, i), &ref, &err);
	if (r < 0)
		return -fs_errno(r);
	d->refs[i] = ref;
	fs_ovlDrop(d, i);
	return 0;
}

/* Size of a dirty buffer holding len valid bytes: small files do not cost a
 * 4 MiB allocation (fresh pages fault, and the munmap at free costs too). */
static uint32_t fs_bufSize(uint32_t len)
{
	uint32_t cap = FS_BUF_MIN;
	while (cap < len && cap < (uint32_t)CHUNK)
		cap *= 2;
	return cap < (uint32_t)CHUNK ? cap : (uint32_t)CHUNK;
}

/* Grows chunk i's buffer to hold its valid length (zeros past it). */
static int fs_bufFit(fs_ctx *m, fs_data *d, size_t i)
{
	uint32_t len = fs_chunkLen(d, i);
	if (d->bcap[i] >= len)
		return 0;
	uint32_t cap = fs_bufSize(len);
	if ((uint64_t)i * CHUNK < d->md5_sub)
		fs_md5Wait(m, d, (uint64_t)(i + 1) * CHUNK); /* the digest reads it */
	uint8_t *nb = realloc(d->bufs[i], cap); /* no store job: the chunk was not full */
	if (!nb)
		return -ENOMEM;
	memset(nb + d->bcap[i], 0, cap - d->bcap[i]);
	d->bufs[i] = nb;
	d->bcap[i] = cap;
	return 0;
}

/* Makes chunk i an in-memory buffer. fill: read its stored bytes (else the
 * caller overwrites all of its valid length). */
static int fs_materialize(fs_ctx *m, fs_data *d, size_t i, int fill)
{
	int r = fs_settle(m, d, i);
	if (r < 0)
		return r;
	if (d->bufs[i])
		return 0;
	if (d->ovl[i]) {
		if (fill)
			return fs_ovlFold(m, d, i);
		fs_ovlDrop(d, i);
	}
	uint32_t len = fs_chunkLen(d, i), cap = fs_bufSize(len);
	uint8_t *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	uint32_t have = d->refs[i].len;
	if (fill && have && !fs_isHole(&d->refs[i])) {
		sl_err err;
		int r = core_chunk_read(m->c, &d->refs[i], 0, buf, have, &err);
		if (r < 0) {
			free(buf);
			return -fs_errno(r);
		}
		memset(buf + have, 0, cap - have);
	} else if (fill) {
		memset(buf, 0, cap);
	} else {
		memset(buf + len, 0, cap - len); /* the caller writes [0, len) */
	}
	d->bufs[i] = buf;
	d->bcap[i] = cap;
	d->ticks[i] = ++d->tick;
	d->ndirty++;
	atomic_fetch_add(&m->dirty_bytes, CHUNK);
	return 0;
}

static int fs_flushChunk(fs_ctx *m, fs_data *d, size_t i)
{
	if (d->jobs && d->jobs[i])
		return fs_settle(m, d, i);
	if (!d->bufs[i])
		return 0;
	core_chunkref ref;
	sl_err err;
	int r = core_chunk_put(m->c, d->bufs[i], fs_chunkLen(d, i), &ref, &err);
	if (r < 0)
		return -fs_errno(r);
	d->refs[i] = ref;
	fs_dropBuf(m, d, i);
	return 0;
}

/* Starts storing a final chunk in the background (hashing and writing it
 * overlaps with the next writes); falls back to storing it now. */
static int fs_flushChunkAsync(fs_ctx *m, fs_data *d, size_t i)
{
	if (!d->bufs[i] || d->jobs[i])
		return 0;
	/* a chunk written start to end is not read back soon: past the page cache */
	d->jobs[i] = core_chunk_put_async_cold(m->c, d->bufs[i], fs_chunkLen(d, i));
	return d->jobs[i] ? 0 : fs_flushChunk(m, d, i);
}

/* 1 when one more dirty buffer would pass the per-file or per-mount bound. */
static int fs_overBound(fs_ctx *m, const fs_data *d)
{
	return d->ndirty >= FS_MAX_DIRTY_PER_FILE ||
	       (d->ndirty >= 1 && atomic_load(&m->dirty_bytes) + CHUNK > FS_MAX_DIRTY_TOTAL);
}

/* Keeps dirty memory under the per-file and per-mount bounds. */
static int fs_enforceLimits(fs_ctx *m, fs_data *d)
{
	while (d->ndirty > FS_MAX_DIRTY_PER_FILE ||
	       (d->ndirty > 1 && atomic_load(&m->dirty_bytes) > FS_MAX_DIRTY_TOTAL)) {
		size_t lru = SIZE_MAX;
		for (size_t i = 0; i < d->nchunks; i++)
			if (d->bufs[i] && (lru == SIZE_MAX || d->ticks[i] < d->ticks[lru]))
				lru = i;
		if (lru == SIZE_MAX)
			break;
		int r = fs_flushChunk(m, d, lru);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Changes the size, keeping chunk lengths and the zero-tail invariant. */
static int fs_resize(fs_ctx *m, fs_data *d, uint64_t nsize)
{
	size_t oldn = d->nchunks, newn = (size_t)((nsize + CHUNK - 1) / CHUNK);
	if (nsize < d->size) {
		for (size_t i = newn; i < oldn; i++)
			fs_dropBuf(m, d, i);
		d->size = nsize;
		d->nchunks = newn;
		if (newn == 0)
			return 0;
		size_t last = newn - 1;
		uint32_t nl = fs_chunkLen(d, last);
		int r = fs_settle(m, d, last);
		if (r == 0 && d->ovl[last])
			r = fs_ovlFold(m, d, last); /* its pages past nl must go */
		if (r < 0)
			return r;
		if (!d->bufs[last] && !fs_isHole(&d->refs[last]) && d->refs[last].len != nl) {
			int r = fs_materialize(m, d, last, 1);
			if (r < 0)
				return r;
		}
		if (d->bufs[last])
			memset(d->bufs[last] + nl, 0, d->bcap[last] - nl);
		else
			d->refs[last].len = nl;
		return 0;
	}
	if (nsize == d->size)
		return 0;
	int r = fs_reserve(d, newn);
	if (r < 0)
		return r;
	if (oldn > 0) {
		size_t last = oldn - 1;
		if ((r = fs_settle(m, d, last)) < 0)
			return r;
		if (d->ovl[last] && fs_chunkLen(d, last) < CHUNK &&
		    (r = fs_ovlFold(m, d, last)) < 0)
			return r;
		if (!d->bufs[last] && !fs_isHole(&d->refs[last]) && d->refs[last].len < CHUNK) {
			r = fs_materialize(m, d, last, 1);
			if (r < 0)
				return r;
		}
	}
	for (size_t i = oldn; i < newn; i++) {
		memset(&d->refs[i], 0, sizeof(d->refs[i]));
		d->bufs[i] = NULL;
		d->ovl[i] = NULL;
	}
	d->size = nsize;
	d->nchunks = newn;
	for (size_t i = oldn ? oldn - 1 : 0; i < newn; i++)
		if (!d->bufs[i] && !d->ovl[i])
			d->refs[i].len = fs_chunkLen(d, i);
	if (oldn > 0 && d->bufs[oldn - 1])
		return fs_bufFit(m, d, oldn - 1); /* the old last chunk grew */
	return 0;
}

static void fs_touch(fs_data *d)
{
	d->dirty = 1;
	d->mtime_set = 0;
	d->etag_hint[0] = '\0';
	clock_gettime(CLOCK_REALTIME, &d->wmtime);
}

int fs_data_truncate(fs_ctx *m, fs_data *d, uint64_t size)
{
	if (size > FS_MAX_FILE_SIZE)
		return -EFBIG;
	if (size == d->size)
		return 0;
	fs_md5WaitAll(m, d); /* buffers may change below */
	if (size == 0)
		fs_md5Reset(d);
	else if (size < d->md5_off)
		d->seq = 0;
	int r = fs_resize(m, d, size);
	fs_touch(d);
	if (r < 0)
		return r;
	return fs_enforceLimits(m, d);
}

int fs_data_write(fs_ctx *m, fs_data *d, const void *buf, size_t len, uint64_t off)
{
	if (len == 0)
		return 0;
	uint64_t end = off + len;
	if (end > FS_MAX_FILE_SIZE || end < off)
		return -EFBIG;
	int r;
	/* A write that continues the previous one streams: its chunks fill up
	 * in memory. Only scattered writes use the spill past the bound. */
	int stream = off == d->wend;
	d->wend = end;
	if (off < d->md5_sub)
		fs_md5WaitAll(m, d); /* rewriting bytes the digest may still read */
	if (end > d->size) {
		r = fs_resize(m, d, end);
		if (r < 0)
			return r;
	}
	const uint8_t *src = buf;
	uint64_t pos = off;
	while (pos < end) {
		size_t i = (size_t)(pos / CHUNK);
		uint32_t coff = (uint32_t)(pos % CHUNK);
		uint64_t n = CHUNK - coff;
		if (n > end - pos)
			n = end - pos;
		int whole = coff == 0 && n >= fs_chunkLen(d, i);
		if (!whole && !d->bufs[i] &&
		    (d->ovl[i] || (!stream && m->spill_dir && fs_overBound(m, d)))) {
			/* past the memory bound: only the touched pages go to the spill */
			r = fs_ovlWrite(m, d, i, coff, src, (uint32_t)n);
			if (r < 0)
				return r;
			src += n;
			pos += n;
			continue;
		}
		r = fs_materialize(m, d, i, !whole);
		if (r < 0)
			return r;
		memcpy(d->bufs[i] + coff, src, n);
		d->ticks[i] = ++d->tick;
		src += n;
		pos += n;
	}
	if (d->seq && off == d->md5_off) {
		d->md5_off = end;
		if (fs_md5Advance(m, d, 0) < 0)
			d->seq = 0; /* no MD5: the commit uses the multipart ETag form */
	} else {
		d->seq = 0;
	}
	fs_touch(d);
	/* Written start to end, or streaming: the chunks the write moved past
	 * are (likely) final; store them in the background. */
	if (d->seq || stream) {
		size_t full = (size_t)(end / CHUNK);
		/* Reap the stores of chunks further behind: a job holds its share of
		 * the process-wide background capacity until waited for. */
		for (size_t i = full > 4 ? full - 4 : 0; i + 2 < full && i < d->nchunks; i++) {
			r = fs_settle(m, d, i);
			if (r < 0)
				return r;
		}
		for (size_t i = full > 2 ? full - 2 : 0; i < full && i < d->nchunks; i++) {
			r = fs_flushChunkAsync(m, d, i);
			if (r < 0)
				return r;
		}
	}
	return fs_enforceLimits(m, d);
}

ssize_t fs_data_read(fs_ctx *m, fs_data *d, void *buf, size_t len, uint64_t off)
{
	if (off >= d->size)
		return 0;
	if (len > d->size - off)
		len = (size_t)(d->size - off);
	uint8_t *dst = buf;
	uint64_t pos = off, end = off + len;
	while (pos < end) {
		size_t i = (size_t)(pos / CHUNK);
		uint32_t coff = (uint32_t)(pos % CHUNK);
		uint64_t n = CHUNK - coff;
		if (n > end - pos)
			n = end - pos;
		if (d->bufs[i]) {
			memcpy(dst, d->bufs[i] + coff, n);
		} else if (d->ovl[i]) {
			int r = fs_ovlRead(m, d, i, coff, dst, (uint32_t)n);
			if (r < 0)
				return r;
		} else if (fs_isHole(&d->refs[i])) {
			memset(dst, 0, n);
		} else {
			sl_err err;
			int r = core_chunk_read(m->c, &d->refs[i], coff, dst, (uint32_t)n, &err);
			if (r < 0)
				return -fs_errno(r);
		}
		dst += n;
		pos += n;
	}
	return (ssize_t)len;
}

int fs_data_commit(fs_ctx *m, fs_data *d, const char *bucket, const char *key, int force)
{
	if (!d->dirty && !force)
		return 0;
	int wantmd5 = !d->etag_hint[0] && d->seq && d->md5_off == d->size;
	if (wantmd5 && fs_md5Advance(m, d, 1) < 0) /* before the buffers go */
		wantmd5 = d->seq = 0;
	uint8_t *scratch = NULL;
	for (size_t i = 0; i < d->nchunks; i++) {
		int r;
		if (d->ovl[i]) {
			if (!scratch && !(scratch = malloc(CHUNK)))
				return -ENOMEM;
			r = fs_ovlStore(m, d, i, scratch);
		} else {
			r = fs_flushChunk(m, d, i);
		}
		if (r < 0) {
			free(scratch);
			return r;
		}
	}
	free(scratch);
	if (d->spill_fd >= 0 && d->novl == 0 && ftruncate(d->spill_fd, 0) < 0)
		fprintf(stderr, "seglake mount: cannot empty a spill file: %s\n", strerror(errno));
	char etag[72] = "";
	if (d->etag_hint[0]) {
		snprintf(etag, sizeof(etag), "%s", d->etag_hint);
	} else if (wantmd5) {
		fs_md5WaitAll(m, d);
		EVP_MD_CTX *copy = EVP_MD_CTX_new();
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned mdlen = 0;
		if (copy && EVP_MD_CTX_copy_ex(copy, d->md5) &&
		    EVP_DigestFinal_ex(copy, md, &mdlen) && mdlen == 16) {
			for (unsigned i = 0; i < 16; i++)
				sprintf(etag + 2 * i, "%02x", md[i]);
		}
		EVP_MD_CTX_free(copy);
	}
	char *meta = d->meta;
	if (!d->mtime_set) {
		meta = fs_meta_set_time(d->meta, "x-amz-meta-mtime", &d->wmtime);
		char *m2 = meta ? fs_meta_set_time(meta, "x-amz-meta-ctime", &d->wmtime) : NULL;
		free(meta);
		meta = m2;
		if (!meta)
			return -ENOMEM;
	}
	core_put_opts opts = { 0 };
	opts.meta = meta;
	core_objinfo info = { 0 };
	fs_self_note(m, bucket, key, 0);
	sl_err err;
	int r = core_put_chunks(m->c, bucket, key, d->refs, d->nchunks, etag[0] ? etag : NULL,
				&opts, &info, &err);
	if (r < 0) {
		if (meta != d->meta)
			free(meta);
		core_objinfo_clear(&info);
		return -fs_errno(r);
	}
	if (meta != d->meta) {
		free(d->meta);
		d->meta = meta;
	}
	d->base_hlc = info.hlc;
	snprintf(d->base_etag, sizeof(d->base_etag), "%s", info.etag);
	d->dirty = 0;
	fs_data_unpend(m, d);
	core_objinfo_clear(&info);
	return 0;
}

ssize_t fs_data_copy(fs_ctx *m, fs_data *src, uint64_t off_in, fs_data *dst, uint64_t off_out,
		     size_t len)
{
	if (off_in >= src->size || len == 0)
		return 0;
	if (len > src->size - off_in)
		len = (size_t)(src->size - off_in);
	uint64_t end = off_out + len;
	if (end > FS_MAX_FILE_SIZE || end < off_out)
		return -EFBIG;
	int whole = off_in == 0 && off_out == 0 && len == src->size && dst->size <= src->size &&
		    !src->dirty && src != dst;
	char hint[72];
	snprintf(hint, sizeof(hint), "%s", src->base_etag);
	uint8_t *tmp = NULL;
	uint64_t pos = 0;
	int r = 0;
	while (pos < len) {
		uint64_t sp = off_in + pos, dp = off_out + pos;
		size_t si = (size_t)(sp / CHUNK), di = (size_t)(dp / CHUNK);
		uint32_t slen = fs_chunkLen(src, si);
		if (sp % CHUNK == 0 && dp % CHUNK == 0 && !src->bufs[si] && !src->ovl[si] &&
		    len - pos >= slen && src != dst && (slen == CHUNK || dp + slen >= dst->size)) {
			/* Share the stored chunk: no bytes move. */
			if (dp + slen > dst->size) {
				r = fs_resize(m, dst, dp + slen);
				if (r < 0)
					break;
			}
			fs_dropBuf(m, dst, di);
			dst->refs[di] = src->refs[si];
			dst->seq = 0;
			fs_touch(dst);
			pos += slen;
			continue;
		}
		uint64_t n = CHUNK - sp % CHUNK;
		if (n > CHUNK - dp % CHUNK)
			n = CHUNK - dp % CHUNK;
		if (n > len - pos)
			n = len - pos;
		if (!tmp && !(tmp = malloc(CHUNK))) {
			r = -ENOMEM;
			break;
		}
		ssize_t got = fs_data_read(m, src, tmp, n, sp);
		if (got < 0) {
			r = (int)got;
			break;
		}
		if (got == 0)
			break;
		r = fs_data_write(m, dst, tmp, (size_t)got, dp);
		if (r < 0)
			break;
		pos += (uint64_t)got;
	}
	free(tmp);
	if (pos == 0 && r < 0)
		return r;
	if (whole && pos == len && dst->size == src->size && hint[0])
		snprintf(dst->etag_hint, sizeof(dst->etag_hint), "%s", hint);
	if (r == 0)
		r = fs_enforceLimits(m, dst);
	return (ssize_t)pos;
}
