/*
 * test_chunked.c - unit tests of auth/chunked.c: the AWS documentation's
 * chunked-upload example (64 KiB + 1 KiB, published chunk signatures) and
 * trailing-checksum example, fed in pieces of every size; the daemon flow
 * (sigv4_sign -> sigv4_verify -> chunked_new_from_auth); tampering,
 * truncation, malformed framing, limits, unsigned trailers with checksum
 * verification, and random garbage that must not crash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_sigv4.h"

#include <openssl/sha.h>

#include "auth/checksum.h"
#include "auth/chunked.h"
#include "auth/sigv4.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define AMZ_DATE "20130524T000000Z"
#define SCOPE "20130524/us-east-1/s3/aws4_request"
#define SEED "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
#define SIG1 "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
#define SIG2 "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
#define SIG3 "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
#define TSEED "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
#define TSIG1 "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2"
#define TSIG2 "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7"
#define TSIG3 "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992"
#define TRSIG "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"

static uint64_t rng_state = 0x13198A2E03707344ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* ---- output sink ------------------------------------------------------------------ */

typedef struct sink {
	unsigned char *buf;
	size_t len, cap;
	size_t max_call;    /* largest single callback */
	size_t abort_after; /* 0: never */
} sink;

static int sink_out(void *ctx, const void *data, size_t len)
{
	sink *s = ctx;
	if (s->abort_after && s->len + len > s->abort_after)
		return 1;
	if (s->len + len > s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 4096;
		while (nc < s->len + len)
			nc *= 2;
		s->buf = realloc(s->buf, nc);
		s->cap = nc;
	}
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	if (len > s->max_call)
		s->max_call = len;
	return 0;
}

/* ---- building bodies -------------------------------------------------------------- */

typedef struct body {
	char *p;
	size_t len, cap;
} body;

static void b_add(body *b, const void *d, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 4096;
		while (nc < b->len + n + 1)
			nc *= 2;
		b->p = realloc(b->p, nc);
		b->cap = nc;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void b_str(body *b, const char *s)
{
	b_add(b, s, strlen(s));
}

/* The documented body: 65536 + 1024 bytes of 'a'. */
static body aws_body(const char *s1, const char *s2, const char *s3, int trailer_mode)
{
	body b = { 0 };
	char *a = malloc(65536);
	memset(a, 'a', 65536);
	b_str(&b, "10000;chunk-signature=");
	b_str(&b, s1);
	b_str(&b, "\r\n");
	b_add(&b, a, 65536);
	b_str(&b, "\r\n400;chunk-signature=");
	b_str(&b, s2);
	b_str(&b, "\r\n");
	b_add(&b, a, 1024);
	b_str(&b, "\r\n0;chunk-signature=");
	b_str(&b, s3);
	b_str(&b, "\r\n");
	if (trailer_mode)
		b_str(&b, "x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:" TRSIG "\r"
			  "\n");
	b_str(&b, "\r\n");
	free(a);
	return b;
}

static chunked *new_signed(int mode, const char *seed, sink *s, int64_t dlen, const char *trailer)
{
	unsigned char key[32];
	sigv4_signing_key(SECRET, "20130524", "us-east-1", "s3", key);
	chunked_opts o = { .mode = mode,
			   .signing_key = key,
			   .amz_date = AMZ_DATE,
			   .scope = SCOPE,
			   .seed_signature = seed,
			   .decoded_length = dlen,
			   .trailer = trailer,
			   .verify_checksum = 1,
			   .out = sink_out,
			   .out_ctx = s };
	chunked *d = NULL;
	if (chunked_new(&o, &d) != SIGV4_OK)
		return NULL;
	return d;
}

/* Feeds body in pieces (piece 0: random sizes); returns finish's status or
 * the first feed error. */
static int feed_all(chunked *d, const char *p, size_t len, size_t piece)
{
	size_t off = 0;
	while (off < len) {
		size_t n = piece ? piece : (size_t)(rnd() % 9000 + 1);
		if (n > len - off)
			n = len - off;
		int st = chunked_feed(d, p + off, n);
		if (st)
			return st;
		off += n;
	}
	return chunked_finish(d);
}

static int all_a(const sink *s, size_t n)
{
	if (s->len != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s->buf[i] != 'a')
			return 0;
	return 1;
}

static void test_aws_example(void)
{
	body b = aws_body(SIG1, SIG2, SIG3, 0);
	CHECK(b.len == 66824); /* the documented Content-Length */
	size_t pieces[] = { 0, 1, 2, 3, 7, 85, 86, 87, 4096, 65536, 66824, 1 << 20 };
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		sink s = { 0 };
		chunked *d = new_signed(SIGV4_PAYLOAD_STREAMING_SIGNED, SEED, &s, 66560, NULL);
		CHECK(d != NULL);
		if (!d)
			continue;
		CHECK_ST(feed_all(d, b.p, b.len, pieces[i]), SIGV4_OK);
		CHECK(all_a(&s, 66560));
		CHECK(chunked_done(d));
		CHECK(chunked_decoded_bytes(d) == 66560);
		CHECK(chunked_trailer_count(d) == 0);
		/* streaming: never more than one input piece handed out at once */
		if (pieces[i] && pieces[i] < 65536)
			CHECK(s.max_call <= pieces[i]);
		chunked_free(d);
		free(s.buf);
	}

	/* encoder side reproduces the published chunk signatures */
	unsigned char key[32], h[32];
	char sig[65];
	sigv4_signing_key(SECRET, "20130524", "us-east-1", "s3", key);
	char *a = malloc(65536);
	memset(a, 'a', 65536);
	SHA256((unsigned char *)a, 65536, h);
	chunked_sign_chunk(key, AMZ_DATE, SCOPE, SEED, h, sig);
	CHECK(strcmp(sig, SIG1) == 0);
	SHA256((unsigned char *)a, 1024, h);
	chunked_sign_chunk(key, AMZ_DATE, SCOPE, SIG1, h, sig);
	CHECK(strcmp(sig, SIG2) == 0);
	free(a);

	/* missing final CRLF is tolerated; extra bytes are not */
	{
		sink s = { 0 };
		chunked *d = new_signed(SIGV4_PAYLOAD_STREAMING_SIGNED, SEED, &s, 66560, NULL);
		CHECK_ST(feed_all(d, b.p, b.len - 2, 0), SIGV4_OK);
		chunked_free(d);
		free(s.buf);
		s = (sink){ 0 };
		d = new_signed(SIGV4_PAYLOAD_STREAMING_SIGNED, SEED, &s, 66560, NULL);
		CHECK_ST(chunked_feed(d, b.p, b.len), SIGV4_OK);
		CHECK_ST(chunked_feed(d, "x", 1), SIGV4_INVALID_REQUEST);
		CHECK_ST(chunked_finish(d), SIGV4_INVALID_REQUEST);
		chunked_free(d);
		free(s.buf);
	}

	/* tampering: one data byte in each chunk, a signature, the seed */
	size_t flips[] = { 100, 40000, 65536 + 86 + 2 + 90, 65536 + 86 + 2 + 85 + 1023 };
	for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
		body t = aws_body(SIG1, SIG2, SIG3, 0);
		t.p[flips[i]] ^= 0x01;
		sink s = { 0 };
		chunked *d = new_signed(SIGV4_PAYLOAD_STREAMING_SIGNED, SEED, &s, 66560, NULL);
		int st = feed_all(d, t.p, t.len, 0);
		CHECK(st == SIGV4_SIGNATURE_MISMATCH || st == SIGV4_INVALID_REQUEST);
		CHECK(st == SIGV4_SIGNATURE_MISMATCH || flips[i] != 100);
		CHECK(strlen(chunked_message(d)) > 0);
		CHECK(!chunked_done(d));
		chunked_free(d);
		free(s.buf);
		free(t.p);
	}
	{
		body t = aws_body(SIG1, SIG3, SIG2, 0); /* signatures swapped */
		sink s = { 0 };
		chunked *d = new_signed(SIGV4_PAYLOAD_STREAMING_SIGNED, SEED, &s, 66560, NULL);
		CHECK_ST(feed_all(d, t.p, t.len, 0), SIGV4_SIGNATURE_MISMATCH);
		chunked_free(d);
		free(s.buf);
		free(t.p);
		s = (sink){ 0 };
		d = new_signed(SIGV4_PAYLOAD_STREAMING_SIGNED, SIG1, &s, 66560, NULL);
		CHECK_ST(feed_all(d, b.p, b.len, 0), SIGV4_SIGNATURE_MISMATCH);
		chunked_free(d);
		free(s.buf);
	}

	/* truncation anywhere -> IncompleteBody at finish */
	int all_incomplete = 1;
	for (size_t cut = 0; cut < b.len - 2; cut += (cut < 200 || cut > b.len - 200) ? 1 : 997) {
		sink s = { 0 };
		chunked *d = new_signed(SIGV4_PAYLOAD_STREAMING_SIGNED, SEED, &s, 66560, NULL);
		int st = feed_all(d, b.p, cut, 0);
		if (st != SIGV4_INCOMPLETE_BODY) {
			all_incomplete = 0;
			fprintf(stderr, "cut %zu -> %s\n", cut, sigv4_status_code(st));
		}
		chunked_free(d);
		free(s.buf);
	}
	CHECK(all_incomplete);

	/* decoded length mismatch */
	{
		sink s = { 0 };
		chunked *d = new_signed(SIGV4_PAYLOAD_STREAMING_SIGNED, SEED, &s, 66561, NULL);
		CHECK_ST(feed_all(d, b.p, b.len, 0), SIGV4_INCOMPLETE_BODY);
		chunked_free(d);
		free(s.buf);
		s = (sink){ 0 };
		d = new_signed(SIGV4_PAYLOAD_STREAMING_SIGNED, SEED, &s, 66000, NULL);
		CHECK_ST(feed_all(d, b.p, b.len, 0), SIGV4_INVALID_ARGUMENT);
		chunked_free(d);
		free(s.buf);
		s = (sink){ 0 };
		d = new_signed(SIGV4_PAYLOAD_STREAMING_SIGNED, SEED, &s, -1, NULL);
		CHECK_ST(feed_all(d, b.p, b.len, 0), SIGV4_OK);
		chunked_free(d);
		free(s.buf);
	}

	/* the receiver aborts */
	{
		sink s = { .abort_after = 1000 };
		chunked *d = new_signed(SIGV4_PAYLOAD_STREAMING_SIGNED, SEED, &s, 66560, NULL);
		CHECK_ST(feed_all(d, b.p, b.len, 0), SIGV4_ABORTED);
		CHECK(sigv4_status_http(SIGV4_ABORTED) == 500);
		chunked_free(d);
		free(s.buf);
	}
	free(b.p);
}

static void test_aws_trailer_example(void)
{
	body b = aws_body(TSIG1, TSIG2, TSIG3, 1);
	size_t pieces[] = { 0, 1, 5, 64, 66560 };
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		sink s = { 0 };
		chunked *d = new_signed(SIGV4_PAYLOAD_STREAMING_SIGNED_TRAILER, TSEED, &s, 66560,
					"x-amz-checksum-crc32c");
		CHECK(d != NULL);
		if (!d)
			continue;
		CHECK_ST(feed_all(d, b.p, b.len, pieces[i]), SIGV4_OK);
		CHECK(all_a(&s, 66560));
		CHECK(chunked_trailer_count(d) == 1);
		CHECK(chunked_trailer_get(d, "X-Amz-Checksum-CRC32C") &&
		      strcmp(chunked_trailer_get(d, "x-amz-checksum-crc32c"), "sOO8/Q==") == 0);
		const char *n = NULL, *v = NULL;
		CHECK(chunked_trailer_at(d, 0, &n, &v) == 0 &&
		      strcmp(n, "x-amz-checksum-crc32c") == 0);
		CHECK(chunked_trailer_at(d, 1, &n, &v) == -1);
		chunked_free(d);
		free(s.buf);
	}
	/* without the final CRLFs (as some SDKs send it) */
	{
		sink s = { 0 };
		chunked *d = new_signed(SIGV4_PAYLOAD_STREAMING_SIGNED_TRAILER, TSEED, &s, 66560,
					"x-amz-checksum-crc32c");
		CHECK_ST(feed_all(d, b.p, b.len - 4, 0), SIGV4_OK);
		chunked_free(d);
		free(s.buf);
	}
	/* trailer signature and value tampering */
	const char *muts[][2] = {
		{ "sOO8/Q==", "sOO8/R==" },
		{ "x-amz-trailer-signature:d81f", "x-amz-trailer-signature:d81e" },
	};
	for (size_t i = 0; i < 2; i++) {
		body t = aws_body(TSIG1, TSIG2, TSIG3, 1);
		char *pos = strstr(t.p + 66000, muts[i][0]);
		CHECK(pos != NULL);
		if (pos)
			memcpy(pos, muts[i][1], strlen(muts[i][1]));
		sink s = { 0 };
		chunked *d = new_signed(SIGV4_PAYLOAD_STREAMING_SIGNED_TRAILER, TSEED, &s, 66560,
					"x-amz-checksum-crc32c");
		CHECK_ST(feed_all(d, t.p, t.len, 0), SIGV4_SIGNATURE_MISMATCH);
		chunked_free(d);
		free(s.buf);
		free(t.p);
	}
	/* trailer not declared / signature missing */
	{
		sink s = { 0 };
		chunked *d = new_signed(SIGV4_PAYLOAD_STREAMING_SIGNED_TRAILER, TSEED, &s, 66560,
					"x-amz-checksum-crc32");
		CHECK_ST(feed_all(d, b.p, b.len, 0), SIGV4_INVALID_REQUEST);
		chunked_free(d);
		free(s.buf);
		body t = aws_body(TSIG1, TSIG2, TSIG3, 0);
		b_str(&t, ""); /* "0;sig\r\n\r\n": no trailers, no trailer signature */
		s = (sink){ 0 };
		d = new_signed(SIGV4_PAYLOAD_STREAMING_SIGNED_TRAILER, TSEED, &s, 66560, NULL);
		CHECK_ST(feed_all(d, t.p, t.len, 0), SIGV4_SIGNATURE_MISMATCH);
		chunked_free(d);
		free(s.buf);
		free(t.p);
	}
	free(b.p);
}

/* ---- unsigned trailer mode ------------------------------------------------------------ */

static body unsigned_body(const unsigned char *data, size_t len, size_t chunk, const char *trailers)
{
	body b = { 0 };
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		char hdr[32];
		snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
		b_str(&b, hdr);
		b_add(&b, data + off, n);
		b_str(&b, "\r\n");
	}
	b_str(&b, "0\r\n");
	b_str(&b, trailers);
	b_str(&b, "\r\n");
	return b;
}

static int run_unsigned(const char *raw, size_t len, const char *trailer_decl, int64_t dlen,
			sink *s)
{
	chunked_opts o = { .mode = SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER,
			   .decoded_length = dlen,
			   .trailer = trailer_decl,
			   .verify_checksum = 1,
			   .out = sink_out,
			   .out_ctx = s };
	chunked *d = NULL;
	int st = chunked_new(&o, &d);
	if (st)
		return st + 1000;
	st = feed_all(d, raw, len, 0);
	chunked_free(d);
	return st;
}

static void test_unsigned(void)
{
	size_t n = 200000;
	unsigned char *data = malloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (unsigned char)rnd();
	int algos[] = { CHECKSUM_CRC32, CHECKSUM_CRC32C, CHECKSUM_CRC64NVME, CHECKSUM_SHA1,
			CHECKSUM_SHA256 };
	for (size_t i = 0; i < 5; i++) {
		checksum c;
		char b64[CHECKSUM_B64_MAX], tr[128];
		checksum_init(&c, algos[i]);
		checksum_update(&c, data, n);
		checksum_final_base64(&c, b64);
		const char *hn = checksum_header_name(algos[i]);
		snprintf(tr, sizeof(tr), "%s:%s\r\n", hn, b64);
		body b = unsigned_body(data, n, 65536, tr);
		sink s = { 0 };
		CHECK_ST(run_unsigned(b.p, b.len, hn, (int64_t)n, &s), SIGV4_OK);
		CHECK(s.len == n && memcmp(s.buf, data, n) == 0);
		free(s.buf);
		free(b.p);

		/* wrong but well-formed checksum -> BadDigest */
		data[7] ^= 1;
		b = unsigned_body(data, n, 8192, tr);
		s = (sink){ 0 };
		CHECK_ST(run_unsigned(b.p, b.len, hn, (int64_t)n, &s), SIGV4_BAD_DIGEST);
		data[7] ^= 1;
		free(s.buf);
		free(b.p);
	}
	/* malformed checksum value, undeclared trailer, spaces after ':' */
	body b = unsigned_body(data, 10, 10, "x-amz-checksum-crc32:notbase64\r\n");
	sink s = { 0 };
	CHECK_ST(run_unsigned(b.p, b.len, "x-amz-checksum-crc32", 10, &s), SIGV4_INVALID_REQUEST);
	free(s.buf);
	free(b.p);
	char tr[128], b64[CHECKSUM_B64_MAX];
	checksum c;
	checksum_init(&c, CHECKSUM_CRC32);
	checksum_update(&c, data, 10);
	checksum_final_base64(&c, b64);
	snprintf(tr, sizeof(tr), "x-amz-checksum-crc32:  %s \r\n", b64);
	b = unsigned_body(data, 10, 3, tr);
	s = (sink){ 0 };
	CHECK_ST(run_unsigned(b.p, b.len, "x-amz-checksum-crc32", 10, &s), SIGV4_OK);
	free(s.buf);
	s = (sink){ 0 };
	CHECK_ST(run_unsigned(b.p, b.len, NULL, 10, &s), SIGV4_INVALID_REQUEST);
	free(s.buf);
	s = (sink){ 0 };
	CHECK_ST(run_unsigned(b.p, b.len, "x-amz-checksum-crc32c", 10, &s), SIGV4_INVALID_REQUEST);
	free(s.buf);
	/* declared trailer never sent */
	free(b.p);
	b = unsigned_body(data, 10, 3, "");
	s = (sink){ 0 };
	CHECK_ST(run_unsigned(b.p, b.len, "x-amz-checksum-crc32", 10, &s), SIGV4_INVALID_REQUEST);
	free(s.buf);
	/* no trailer at all, none declared */
	s = (sink){ 0 };
	CHECK_ST(run_unsigned(b.p, b.len, NULL, 10, &s), SIGV4_OK);
	CHECK(s.len == 10);
	free(s.buf);
	/* ...and without the final empty line */
	s = (sink){ 0 };
	CHECK_ST(run_unsigned(b.p, b.len - 2, NULL, 10, &s), SIGV4_OK);
	free(s.buf);
	/* truncated with a declared trailer: incomplete */
	s = (sink){ 0 };
	CHECK_ST(run_unsigned(b.p, b.len - 2, "x-amz-checksum-crc32", 10, &s),
		 SIGV4_INCOMPLETE_BODY);
	free(s.buf);
	free(b.p);
	/* unknown checksum in the declaration when verifying */
	s = (sink){ 0 };
	CHECK_ST(run_unsigned("0\r\n\r\n", 5, "x-amz-checksum-md5", 0, &s),
		 SIGV4_INVALID_ARGUMENT + 1000);
	free(data);
}

/* ---- malformed framing ---------------------------------------------------------------- */

static void test_malformed(void)
{
	struct {
		const char *body;
		int want;
	} cases[] = {
		{ "zz\r\nabc\r\n0\r\n\r\n", SIGV4_INVALID_REQUEST },
		{ "-1\r\n", SIGV4_INVALID_REQUEST },
		{ "+3\r\nabc\r\n0\r\n\r\n", SIGV4_INVALID_REQUEST },
		{ "\r\n", SIGV4_INVALID_REQUEST },
		{ "ffffffffffffffffff\r\n", SIGV4_INVALID_ARGUMENT },
		{ "10000000001\r\n", SIGV4_INVALID_ARGUMENT },
		{ "3\nabc\r\n0\r\n\r\n", SIGV4_INVALID_REQUEST },
		{ "3\r\nabcd\r\n0\r\n\r\n", SIGV4_INVALID_REQUEST },
		{ "3\r\nabc\n0\r\n\r\n", SIGV4_INVALID_REQUEST },
		{ "3;chunk-signature=00\r\nabc\r\n0\r\n\r\n", SIGV4_INVALID_REQUEST },
		{ "3 \r\nabc\r\n0\r\n\r\n", SIGV4_INVALID_REQUEST },
		{ "3\r\nabc\r\n0\r\n\r\nextra", SIGV4_INVALID_REQUEST },
		{ "3\r\nabc\r\n0\r\nno-colon\r\n\r\n", SIGV4_INVALID_REQUEST },
		{ "3\r\nabc\r\n0\r\n:v\r\n\r\n", SIGV4_INVALID_REQUEST },
		{ "3\r\nabc\r\n0\r\nx-amz-trailer-signature:abc\r\n\r\n", SIGV4_INVALID_REQUEST },
		{ "3\r\nab", SIGV4_INCOMPLETE_BODY },
		{ "3\r\nabc\r", SIGV4_INCOMPLETE_BODY },
		{ "3\r\nabc\r\n", SIGV4_INCOMPLETE_BODY },
		{ "", SIGV4_INCOMPLETE_BODY },
		{ "3\r\nabc\r\n0\r\n\r\n", SIGV4_OK },
		{ "3\r\nabc\r\n0\r\n", SIGV4_OK },
		{ "3\r\na\r\n\r\n0\r\n\r\n", SIGV4_OK },
		{ "A\r\n0123456789\r\n0\r\n\r\n", SIGV4_OK },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sink s = { 0 };
		int st = run_unsigned(cases[i].body, strlen(cases[i].body), NULL, -1, &s);
		if (st != cases[i].want)
			fprintf(stderr, "case %zu: %s\n", i, cases[i].body);
		CHECK_ST(st, cases[i].want);
		free(s.buf);
	}
	/* over-long header line and over-large trailers */
	body b = { 0 };
	for (int i = 0; i < CHUNKED_MAX_LINE + 10; i++)
		b_str(&b, "0");
	b_str(&b, "3\r\nabc\r\n0\r\n\r\n");
	sink s = { 0 };
	CHECK_ST(run_unsigned(b.p, b.len, NULL, -1, &s), SIGV4_INVALID_REQUEST);
	free(b.p);
	b = (body){ 0 };
	b_str(&b, "0\r\n");
	for (int i = 0; i < 40; i++) {
		char line[300];
		snprintf(line, sizeof(line), "x-amz-meta-%d:%0250d\r\n", i, 0);
		b_str(&b, line);
	}
	b_str(&b, "\r\n");
	CHECK_ST(run_unsigned(b.p, b.len, "x-amz-meta-0", -1, &s), SIGV4_INVALID_REQUEST);
	free(b.p);
	free(s.buf);

	/* bad options */
	chunked *d = NULL;
	chunked_opts o = { .mode = SIGV4_PAYLOAD_HASH, .out = sink_out };
	CHECK_ST(chunked_new(&o, &d), SIGV4_INVALID_ARGUMENT);
	o.mode = SIGV4_PAYLOAD_STREAMING_SIGNED;
	CHECK_ST(chunked_new(&o, &d), SIGV4_INVALID_ARGUMENT); /* no key */
	CHECK(d == NULL);
	sigv4_auth a = { 0 };
	a.status = SIGV4_OK;
	a.payload_mode = SIGV4_PAYLOAD_UNSIGNED;
	CHECK_ST(chunked_new_from_auth(&a, sink_out, &s, &d), SIGV4_INVALID_ARGUMENT);
	chunked_free(NULL);
}

/* ---- the daemon flow end to end ----------------------------------------------------- */

static int lookup(void *ctx, const char *akid, char *secret, size_t cap)
{
	(void)ctx;
	if (strcmp(akid, "AKIAIOSFODNN7EXAMPLE") != 0)
		return SIGV4_KEY_NOT_FOUND;
	snprintf(secret, cap, "%s", SECRET);
	return SIGV4_KEY_FOUND;
}

static void test_flow(void)
{
	const time_t now = 1700000000;
	char amz[17];
	sigv4_format_date(now, amz);
	size_t n = 300000;
	unsigned char *data = malloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (unsigned char)rnd();
	char crc[CHECKSUM_B64_MAX];
	checksum c;
	checksum_init(&c, CHECKSUM_CRC64NVME);
	checksum_update(&c, data, n);
	checksum_final_base64(&c, crc);

	char dl[32];
	snprintf(dl, sizeof(dl), "%zu", n);
	sigv4_header h[7] = {
		{ "Host", "127.0.0.1:9000" },
		{ "X-Amz-Date", amz },
		{ "X-Amz-Content-SHA256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" },
		{ "X-Amz-Decoded-Content-Length", dl },
		{ "X-Amz-Trailer", "x-amz-checksum-crc64nvme" },
		{ "Content-Encoding", "aws-chunked" },
		{ "Authorization", NULL },
	};
	char authz[600], seed[65];
	sigv4_sign_params p = { .method = "PUT",
				.raw_path = "/bucket/big%20file.bin",
				.headers = h,
				.n_headers = 6,
				.access_key = "AKIAIOSFODNN7EXAMPLE",
				.secret = SECRET,
				.region = "eu-central-1",
				.amz_date = amz,
				.payload_hash = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" };
	CHECK(sigv4_sign(&p, authz, sizeof(authz), seed) == 0);
	h[6].value = authz;

	sigv4_config cfg = { .lookup = lookup };
	sigv4_request r = { .method = "PUT",
			    .raw_path = "/bucket/big%20file.bin",
			    .headers = h,
			    .n_headers = 7,
			    .now = now + 5 };
	sigv4_auth a;
	CHECK_ST(sigv4_verify(&cfg, &r, &a), SIGV4_OK);
	CHECK(a.payload_mode == SIGV4_PAYLOAD_STREAMING_SIGNED_TRAILER);
	CHECK(a.decoded_length == (int64_t)n);
	CHECK(strcmp(a.trailer, "x-amz-checksum-crc64nvme") == 0);
	CHECK(strcmp(a.signature, seed) == 0);

	/* the client side encodes with 64 KiB chunks */
	unsigned char key[32], hsh[32];
	sigv4_signing_key(SECRET, "20231114", "eu-central-1", "s3", key);
	char scope[64];
	snprintf(scope, sizeof(scope), "%.8s/eu-central-1/s3/aws4_request", amz);
	CHECK(strcmp(scope, a.scope) == 0);
	body b = { 0 };
	char prev[65], sig[65];
	memcpy(prev, seed, 65);
	for (size_t off = 0;; off += 65536) {
		size_t k = off >= n ? 0 : (n - off < 65536 ? n - off : 65536);
		SHA256(data + off, k, hsh);
		chunked_sign_chunk(key, amz, scope, prev, hsh, sig);
		char hdr[128];
		snprintf(hdr, sizeof(hdr), "%zx;chunk-signature=%s\r\n", k, sig);
		b_str(&b, hdr);
		memcpy(prev, sig, 65);
		if (k == 0)
			break;
		b_add(&b, data + off, k);
		b_str(&b, "\r\n");
	}
	char tl[128], tsig[65];
	snprintf(tl, sizeof(tl), "x-amz-checksum-crc64nvme:%s\n", crc);
	chunked_sign_trailer(key, amz, scope, prev, tl, strlen(tl), tsig);
	snprintf(tl, sizeof(tl), "x-amz-checksum-crc64nvme:%s\r\n", crc);
	b_str(&b, tl);
	b_str(&b, "x-amz-trailer-signature:");
	b_str(&b, tsig);
	b_str(&b, "\r\n\r\n");

	for (int round = 0; round < 3; round++) {
		sink s = { 0 };
		chunked *d = NULL;
		CHECK_ST(chunked_new_from_auth(&a, sink_out, &s, &d), SIGV4_OK);
		if (!d)
			continue;
		if (round == 2)
			b.p[1000] ^= 0x20; /* one byte of the first chunk */
		int st = feed_all(d, b.p, b.len, round == 0 ? 0 : 1);
		if (round < 2) {
			CHECK_ST(st, SIGV4_OK);
			CHECK(s.len == n && memcmp(s.buf, data, n) == 0);
			CHECK(strcmp(chunked_trailer_get(d, "x-amz-checksum-crc64nvme"), crc) == 0);
		} else {
			CHECK_ST(st, SIGV4_SIGNATURE_MISMATCH);
			CHECK(strcmp(sigv4_status_code(st), "SignatureDoesNotMatch") == 0);
		}
		chunked_free(d);
		free(s.buf);
	}
	sigv4_auth_clear(&a);
	free(b.p);
	free(data);
}

/* ---- garbage --------------------------------------------------------------------------- */

static void test_garbage(void)
{
	const char *alpha = "0123456789abcdefABCDEF;=\r\n:-chunk-signature x-amz";
	size_t al = strlen(alpha);
	int weird = 0;
	for (int i = 0; i < 3000; i++) {
		char buf[512];
		size_t n = rnd() % sizeof(buf);
		for (size_t k = 0; k < n; k++)
			buf[k] = (i & 1) ? (char)rnd() : alpha[rnd() % al];
		int modes[] = { SIGV4_PAYLOAD_STREAMING_SIGNED,
				SIGV4_PAYLOAD_STREAMING_SIGNED_TRAILER,
				SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER };
		int mode = modes[i % 3];
		sink s = { 0 };
		chunked *d;
		if (mode == SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER) {
			chunked_opts o = { .mode = mode,
					   .decoded_length = -1,
					   .trailer = "x-amz-checksum-crc32",
					   .verify_checksum = 1,
					   .out = sink_out,
					   .out_ctx = &s };
			if (chunked_new(&o, &d) != SIGV4_OK)
				d = NULL;
		} else {
			d = new_signed(mode, SEED, &s, -1, "x-amz-checksum-crc32");
		}
		if (!d) {
			weird++;
			continue;
		}
		int st = feed_all(d, buf, n, (size_t)(i % 7));
		if (st == SIGV4_OK && mode != SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER)
			weird++;
		if (st != SIGV4_OK && chunked_message(d)[0] == '\0')
			weird++;
		chunked_free(d);
		free(s.buf);
	}
	CHECK(weird == 0);
}

int main(void)
{
	test_aws_example();
	test_aws_trailer_example();
	test_unsigned();
	test_malformed();
	test_flow();
	test_garbage();
	return check_done("chunked");
}
