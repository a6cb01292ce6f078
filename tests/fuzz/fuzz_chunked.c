/*
 * fuzz_chunked.c - libFuzzer target for the aws-chunked body decoder
 * (auth/chunked.c): signed, signed-with-trailer and unsigned-with-trailer
 * modes, optional trailing checksum verification, fed in fuzzed piece sizes.
 *
 * Input: an 8-byte prefix, then the body.
 *   [0] bits 0-1 mode (0 signed, 1 signed+trailer, 2/3 unsigned+trailer),
 *       bit 2 verify_checksum, bit 3 output callback aborts after 100 bytes
 *   [1] x-amz-trailer value (index into fuzz_trailers)
 *   [2] bit 0: seed signature of the AWS trailer example instead of the
 *       plain example (both use the AWS documentation key/date/scope)
 *   [3] piece-size seed (0: the whole body in one feed)
 *   [4..7] expected decoded length, little-endian u32; 0xffffffff = unchecked
 * SEGLAKE_FUZZ_DEBUG=1 prints each result.
 * Not here: request signature verification (fuzz_sigv4.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/chunked.h"
#include "auth/sigv4.h"

#define FUZZ_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define FUZZ_DATE "20130524T000000Z"
#define FUZZ_SCOPE "20130524/us-east-1/s3/aws4_request"
#define FUZZ_SEED "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
#define FUZZ_TSEED "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"

static const char *const fuzz_trailers[] = {
	NULL,
	"x-amz-checksum-crc32",
	"x-amz-checksum-crc32c",
	"x-amz-checksum-crc64nvme",
	"x-amz-checksum-sha1",
	"x-amz-checksum-sha256",
	"x-amz-checksum-crc32,x-amz-meta-extra",
	"x-amz-checksum-bogus",
};

typedef struct fuzz_sink {
	uint64_t got;
	uint64_t abort_after; /* 0: never */
} fuzz_sink;

static int fuzz_out(void *ctx, const void *data, size_t len)
{
	fuzz_sink *s = ctx;
	/* Touch every byte handed out so ASan sees out-of-bounds output. */
	volatile uint8_t x = 0;
	for (size_t i = 0; i < len; i++)
		x ^= ((const uint8_t *)data)[i];
	(void)x;
	s->got += len;
	return s->abort_after && s->got > s->abort_after;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 8 || size > (1u << 20))
		return 0;
	static const int modes[] = { SIGV4_PAYLOAD_STREAMING_SIGNED,
				     SIGV4_PAYLOAD_STREAMING_SIGNED_TRAILER,
				     SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER,
				     SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER };
	uint32_t dl = (uint32_t)data[4] | (uint32_t)data[5] << 8 | (uint32_t)data[6] << 16 |
		      (uint32_t)data[7] << 24;
	unsigned char key[32];
	sigv4_signing_key(FUZZ_SECRET, "20130524", "us-east-1", "s3", key);
	fuzz_sink sink = { .abort_after = (data[0] & 8) ? 100 : 0 };
	chunked_opts o = {
		.mode = modes[data[0] & 3],
		.signing_key = key,
		.amz_date = FUZZ_DATE,
		.scope = FUZZ_SCOPE,
		.seed_signature = (data[2] & 1) ? FUZZ_TSEED : FUZZ_SEED,
		.decoded_length = dl == 0xffffffffu ? -1 : (int64_t)dl,
		.trailer =
			fuzz_trailers[data[1] % (sizeof(fuzz_trailers) / sizeof(fuzz_trailers[0]))],
		.verify_checksum = (data[0] & 4) != 0,
		.out = fuzz_out,
		.out_ctx = &sink,
	};
	chunked *d = NULL;
	if (chunked_new(&o, &d) != SIGV4_OK)
		return 0;
	const uint8_t *body = data + 8;
	size_t left = size - 8;
	uint64_t rng = 0x9E3779B97F4A7C15ull ^ data[3];
	int st = SIGV4_OK;
	while (left > 0) {
		size_t piece = left;
		if (data[3]) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			piece = 1 + (size_t)(rng % ((size_t)data[3] * 17));
			if (piece > left)
				piece = left;
		}
		st = chunked_feed(d, body, piece);
		body += piece;
		left -= piece;
		if (st != SIGV4_OK)
			break;
	}
	/* An error must stick. */
	if (st != SIGV4_OK && chunked_feed(d, "x", 1) != st)
		__builtin_trap();
	int fin = chunked_finish(d);
	if (getenv("SEGLAKE_FUZZ_DEBUG"))
		fprintf(stderr, "chunked: %s: %s\n", sigv4_status_code(fin), chunked_message(d));
	if (st != SIGV4_OK && fin == SIGV4_OK)
		__builtin_trap();
	if (!sink.abort_after && chunked_decoded_bytes(d) != sink.got)
		__builtin_trap();
	(void)chunked_done(d);
	(void)chunked_message(d);
	size_t nt = chunked_trailer_count(d);
	for (size_t i = 0; i <= nt; i++) {
		const char *n = NULL, *v = NULL;
		if (chunked_trailer_at(d, i, &n, &v) == 0 && n && v)
			(void)chunked_trailer_get(d, n);
	}
	chunked_free(d);
	return 0;
}
