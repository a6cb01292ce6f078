/*
 * fs_data.c - the write buffer of an open file, built on the core chunk API.
 * A file is a list of chunk refs (the base version's chunks from
 * core_get_chunks); a write materialises only the chunks it touches as
 * in-memory buffers, dirty buffers go back to the core with core_chunk_put
 * when memory bounds are hit, and a commit is one core_put_chunks (a new
 * version sharing every untouched chunk). Not here: FUSE replies, inode
 * names, metadata meaning (fs_attr.c).
 */
#include "fs/fs_int.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK ((uint64_t)CORE_CHUNK_SIZE)

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

static void fs_md5Reset(fs_data *d)
{
	EVP_DigestInit_ex(d->md5, EVP_md5(), NULL);
	d->md5_off = 0;
	d->seq = 1;
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
	fs_md5Reset(d);
	clock_gettime(CLOCK_REALTIME, &d->wmtime);
	*out = d;
	return 0;
}

static void fs_dropBuf(fs_ctx *m, fs_data *d, size_t i)
{
	if (!d->bufs[i])
		return;
	if (d->jobs && d->jobs[i]) {
		/* the worker still reads this buffer */
		core_chunk_job_wait(d->jobs[i], NULL, NULL);
		d->jobs[i] = NULL;
	}
	free(d->bufs[i]);
	d->bufs[i] = NULL;
	d->ndirty--;
	atomic_fetch_sub(&m->dirty_bytes, CHUNK);
}

void fs_data_free(fs_ctx *m, fs_data *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->nchunks; i++)
		fs_dropBuf(m, d, i);
	free(d->refs);
	free(d->bufs);
	free(d->ticks);
	free(d->jobs);
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
	uint64_t *t = realloc(d->ticks, ncap * sizeof(*t));
	if (!t)
		return -ENOMEM;
	d->ticks = t;
	core_chunk_job **j = realloc(d->jobs, ncap * sizeof(*j));
	if (!j)
		return -ENOMEM;
	d->jobs = j;
	memset(d->jobs + d->cap, 0, (ncap - d->cap) * sizeof(*j));
	memset(d->refs + d->cap, 0, (ncap - d->cap) * sizeof(*r));
	memset(d->bufs + d->cap, 0, (ncap - d->cap) * sizeof(*b));
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

/* Makes chunk i an in-memory buffer. fill: read its stored bytes (else the
 * caller overwrites all of its valid length). */
static int fs_materialize(fs_ctx *m, fs_data *d, size_t i, int fill)
{
	int r = fs_settle(m, d, i);
	if (r < 0)
		return r;
	if (d->bufs[i])
		return 0;
	uint8_t *buf = malloc(CHUNK);
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
		memset(buf + have, 0, CHUNK - have);
	} else {
		memset(buf, 0, CHUNK);
	}
	d->bufs[i] = buf;
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
	d->jobs[i] = core_chunk_put_async(m->c, d->bufs[i], fs_chunkLen(d, i));
	return d->jobs[i] ? 0 : fs_flushChunk(m, d, i);
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
		if (r < 0)
			return r;
		if (!d->bufs[last] && !fs_isHole(&d->refs[last]) && d->refs[last].len != nl) {
			int r = fs_materialize(m, d, last, 1);
			if (r < 0)
				return r;
		}
		if (d->bufs[last])
			memset(d->bufs[last] + nl, 0, CHUNK - nl);
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
		if (!d->bufs[last] && !fs_isHole(&d->refs[last]) && d->refs[last].len < CHUNK) {
			r = fs_materialize(m, d, last, 1);
			if (r < 0)
				return r;
		}
	}
	for (size_t i = oldn; i < newn; i++) {
		memset(&d->refs[i], 0, sizeof(d->refs[i]));
		d->bufs[i] = NULL;
	}
	d->size = nsize;
	d->nchunks = newn;
	for (size_t i = oldn ? oldn - 1 : 0; i < newn; i++)
		if (!d->bufs[i])
			d->refs[i].len = fs_chunkLen(d, i);
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
		r = fs_materialize(m, d, i, !whole);
		if (r < 0)
			return r;
		memcpy(d->bufs[i] + coff, src, n);
		d->ticks[i] = ++d->tick;
		src += n;
		pos += n;
	}
	if (d->seq && off == d->md5_off) {
		EVP_DigestUpdate(d->md5, buf, len);
		d->md5_off = end;
	} else {
		d->seq = 0;
	}
	fs_touch(d);
	/* Written start to end: chunks behind the write position are final. */
	if (d->seq) {
		size_t full = (size_t)(d->md5_off / CHUNK);
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
	for (size_t i = 0; i < d->nchunks; i++) {
		int r = fs_flushChunk(m, d, i);
		if (r < 0)
			return r;
	}
	char etag[72] = "";
	if (d->etag_hint[0]) {
		snprintf(etag, sizeof(etag), "%s", d->etag_hint);
	} else if (d->seq && d->md5_off == d->size) {
		EVP_MD_CTX *copy = EVP_MD_CTX_new();
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned mdlen = 0;
		if (copy && EVP_MD_CTX_copy_ex(copy, d->md5) && EVP_DigestFinal_ex(copy, md, &mdlen) &&
		    mdlen == 16) {
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
		if (sp % CHUNK == 0 && dp % CHUNK == 0 && !src->bufs[si] && len - pos >= slen &&
		    src != dst && (slen == CHUNK || dp + slen >= dst->size)) {
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
