/*
 * fuzz_segment.c - libFuzzer target for the segment format (store/segment.c)
 * and the segment reader paths of store/store.c: recovery in store_open
 * (walk, torn-tail cut) and store_scan over a segment file, as when a data
 * dir holds a corrupt or hostile segment.
 *
 * Input: one flag byte, then the bytes of a segment file.
 *   flag bit 0: before use, recompute the header CRC, every record header CRC
 *               and payload CRC (and bit 1: every chunk's SHA-256), so the
 *               fuzzer gets past the checksums into the structure.
 * Per input: (1) seg_header_decode / seg_rec_decode / seg_rec_verify walk the
 * bytes in memory; (2) the bytes are written as seg-<id>.sl into a scratch
 * dir, store_open recovers it and store_scan reads it; (3) the original bytes
 * are written over the recovered file and store_scan runs again (a segment
 * that changes under a running store). Not here: the journal ops inside
 * (fuzz_repl.c). SEGLAKE_FUZZ_DEBUG=1 prints each result.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/err.h"
#include "store/segment.h"
#include "store/store.h"
#include "fuzz_util.h"

static struct {
	char dir[512]; /* scratch dir, made once per process */
} fz;

static void fuzz_cleanup(void)
{
	if (fz.dir[0])
		fuzz_rmtree(fz.dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (fuzz_mkdtemp("segment", fz.dir, sizeof(fz.dir)) < 0)
		abort();
	atexit(fuzz_cleanup);
	return 0;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* Makes checksums consistent with whatever structure the bytes describe. */
static void fuzz_fixup(uint8_t *b, size_t n, int hashes)
{
	if (n >= SEG_HEADER_SIZE)
		put32(b + 60, sl_crc32c(0, b, 60));
	size_t pos = SEG_HEADER_SIZE;
	while (pos + SEG_REC_HEADER <= n) {
		uint8_t *h = b + pos;
		uint32_t len = get32(h + 8);
		size_t avail = n - pos - SEG_REC_HEADER;
		uint8_t *p = h + SEG_REC_HEADER;
		if (len <= avail) {
			if (h[4] == SEG_REC_CHUNK && len >= 32) {
				if (hashes)
					SHA256(p + 32, len - 32, p);
				put32(h + 12, sl_crc32c(0, p, len));
			} else {
				put32(h + 12, sl_crc32c(0, p, len));
			}
		}
		put32(h + 20, sl_crc32c(0, h, 20));
		if (len > avail)
			break;
		pos += SEG_REC_HEADER + len;
	}
}

static void fuzz_walk_memory(const uint8_t *b, size_t n)
{
	seg_header hdr;
	if (seg_header_decode(b, n, &hdr) == 0 && memchr(hdr.node, '\0', sizeof(hdr.node)) == NULL)
		__builtin_trap();
	size_t pos = SEG_HEADER_SIZE;
	while (pos < n) {
		seg_rec r;
		if (seg_rec_decode(b + pos, n - pos, &r) < 0)
			break;
		if (r.payload_len > n - pos - SEG_REC_HEADER)
			break;
		if (seg_rec_verify(&r, b + pos + SEG_REC_HEADER) < 0)
			break;
		pos += SEG_REC_HEADER + r.payload_len;
	}
}

typedef struct scan_ctx {
	store *s;
	uint64_t records;
} scan_ctx;

static int fuzz_scan_fn(void *ctx, int type, const uint8_t *hash, const uint8_t *payload,
			store_loc loc, store_pos end)
{
	scan_ctx *sc = ctx;
	(void)end;
	sc->records++;
	if (type == SEG_REC_JOURNAL) {
		if (!payload || strlen((const char *)payload) > loc.len)
			__builtin_trap();
	} else if (type == SEG_REC_CHUNK) {
		if (!hash)
			__builtin_trap();
		uint8_t buf[256];
		uint32_t len = loc.len < sizeof(buf) ? loc.len : (uint32_t)sizeof(buf);
		sl_err err = { 0 };
		(void)store_read(sc->s, loc.seg, loc.off, buf, len, &err);
	}
	return sc->records > 100000; /* bounded */
}

static int fuzz_write_file(const char *path, const uint8_t *b, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	size_t off = 0;
	while (off < n) {
		ssize_t w = write(fd, b + off, n - off);
		if (w <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)w;
	}
	close(fd);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > (1u << 20))
		return 0;
	uint8_t *b = malloc(size); /* exact size: ASan catches reads past the end */
	if (!b)
		return 0;
	size_t n = size - 1;
	memcpy(b, data + 1, n);
	if (data[0] & 1)
		fuzz_fixup(b, n, data[0] & 2);

	fuzz_walk_memory(b, n);

	seg_header hdr;
	uint64_t id = seg_header_decode(b, n, &hdr) == 0 ? hdr.id : 1;
	char path[700];
	snprintf(path, sizeof(path), "%s/seg-%016" PRIx64 ".sl", fz.dir, id);
	if (fuzz_write_file(path, b, n) == 0) {
		store_opts o = { .node = "fuzzfuzzfuzzfuzz" };
		store *s = NULL;
		sl_err err = { 0 };
		if (store_open(fz.dir, &o, (store_pos){ 0, 0 }, &s, &err) == 0) {
			scan_ctx sc = { .s = s };
			int rc = store_scan(s, (store_pos){ 0, 0 }, fuzz_scan_fn, &sc, &err);
			if (getenv("SEGLAKE_FUZZ_DEBUG"))
				fprintf(stderr, "segment: scan rc %d, %" PRIu64 " records\n", rc,
					sc.records);
			(void)store_tail(s);
			if (fuzz_write_file(path, b, n) == 0) {
				sc.records = 0;
				(void)store_scan(s, (store_pos){ 0, 0 }, fuzz_scan_fn, &sc, &err);
			}
			store_close(s);
		}
	}
	/* Leave the scratch dir empty for the next input. */
	fuzz_rmtree(fz.dir);
	mkdir(fz.dir, 0700);
	free(b);
	return 0;
}
