/*
 * chunked.c - push decoder for aws-chunked bodies (signed chunks, signed and
 * unsigned trailers). See chunked.h. Not here: request-level SigV4
 * (sigv4.c), HTTP transfer-encoding (libmicrohttpd removes that layer).
 *
 * A byte-driven state machine: header and trailer lines are collected in a
 * bounded line buffer; chunk data goes straight from the caller's slice to
 * the output callback while its SHA-256 (and the trailing checksum) is
 * updated, so memory use does not depend on the chunk size.
 */
#include "auth/chunked.h"

#include "common/hex.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/checksum.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define MAX_CHUNK_SIZE ((uint64_t)1 << 40) /* 1 TiB: far above any real chunk */

enum dstate {
	ST_SIZE,       /* reading "<hex>[;chunk-signature=..]\r\n" */
	ST_DATA,       /* chunk payload */
	ST_DATA_CR,    /* "\r" after the payload */
	ST_DATA_LF,    /* "\n" after the payload */
	ST_FINAL_CRLF, /* signed, no trailer: the empty line after the 0 chunk */
	ST_TRAILER,    /* trailer lines up to an empty line */
	ST_DONE,
};

struct chunked {
	int mode;
	int signed_chunks;
	int state;
	int err; /* sticky enum sigv4_status */
	char msg[256];

	unsigned char key[32];
	char amz_date[17];
	char scope[160];
	char prev_sig[65];
	char chunk_sig[65]; /* signature announced for the current chunk */
	EVP_MD_CTX *md;	    /* SHA-256 of the current chunk (signed modes) */

	uint64_t remaining; /* bytes left in the current chunk */
	uint64_t total;	    /* payload bytes emitted */
	int64_t expected;   /* decoded length or -1 */

	char line[CHUNKED_MAX_LINE + 2];
	size_t line_len;
	int line_cr; /* saw '\r', waiting for '\n' */

	char *trailer_decl; /* lowercased x-amz-trailer list, or NULL */
	int verify_checksum;
	checksum ck;
	int ck_algo;

	size_t trailer_bytes;
	size_t ntrailers;
	char *tname[CHUNKED_MAX_TRAILER_COUNT];
	char *tvalue[CHUNKED_MAX_TRAILER_COUNT];
	int trailer_sig_seen;

	chunked_out_fn out;
	void *out_ctx;
};

static int dfail(chunked *d, int st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int dfail(chunked *d, int st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (!d->err) {
		vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
		d->err = st;
	}
	va_end(ap);
	return d->err;
}

static void hmac_hex(const unsigned char key[32], const char *msg, char out[65])
{
	unsigned char mac[32];
	unsigned int len = 32;
	HMAC(EVP_sha256(), key, 32, (const unsigned char *)msg, strlen(msg), mac, &len);
	sl_hex(mac, 32, out);
}

void chunked_sign_chunk(const unsigned char key[32], const char *amz_date, const char *scope,
			const char *prev_sig, const unsigned char data_sha256[32], char out[65])
{
	char dh[65];
	char sts[512];
	sl_hex(data_sha256, 32, dh);
	snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256-PAYLOAD\n%s\n%s\n%s\n" EMPTY_SHA256 "\n%s",
		 amz_date, scope, prev_sig, dh);
	hmac_hex(key, sts, out);
}

void chunked_sign_trailer(const unsigned char key[32], const char *amz_date, const char *scope,
			  const char *prev_sig, const void *trailer_bytes, size_t len, char out[65])
{
	unsigned char h[32];
	char hh[65], sts[512];
	SHA256(trailer_bytes, len, h);
	sl_hex(h, 32, hh);
	snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256-TRAILER\n%s\n%s\n%s\n%s", amz_date, scope,
		 prev_sig, hh);
	hmac_hex(key, sts, out);
}

static int is_hex64_lower(const char *s, size_t n)
{
	if (n != 64)
		return 0;
	for (size_t i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* Is name in the comma-separated declared list? */
static int trailer_declared(const char *decl, const char *name)
{
	if (!decl)
		return 0;
	size_t nl = strlen(name);
	const char *p = decl;
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		const char *e = p;
		while (*e && *e != ',')
			e++;
		const char *t = e;
		while (t > p && t[-1] == ' ')
			t--;
		if ((size_t)(t - p) == nl && strncmp(p, name, nl) == 0)
			return 1;
		p = e;
	}
	return 0;
}

/* The checksum algorithm named in the declared trailer list, if any. */
static int declared_checksum(const char *decl)
{
	static const int algos[] = { CHECKSUM_CRC32, CHECKSUM_CRC32C, CHECKSUM_CRC64NVME,
				     CHECKSUM_SHA1, CHECKSUM_SHA256 };
	for (size_t i = 0; i < sizeof(algos) / sizeof(algos[0]); i++)
		if (trailer_declared(decl, checksum_header_name(algos[i])))
			return algos[i];
	return CHECKSUM_NONE;
}

int chunked_new(const chunked_opts *o, chunked **out)
{
	*out = NULL;
	if (!o || !o->out)
		return SIGV4_INVALID_ARGUMENT;
	int signed_chunks = o->mode == SIGV4_PAYLOAD_STREAMING_SIGNED ||
			    o->mode == SIGV4_PAYLOAD_STREAMING_SIGNED_TRAILER;
	if (!signed_chunks && o->mode != SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER)
		return SIGV4_INVALID_ARGUMENT;
	if (signed_chunks && (!o->signing_key || !o->amz_date || strlen(o->amz_date) != 16 ||
			      !o->scope || strlen(o->scope) >= 160 || !o->seed_signature ||
			      !is_hex64_lower(o->seed_signature, strlen(o->seed_signature))))
		return SIGV4_INVALID_ARGUMENT;
	chunked *d = calloc(1, sizeof(*d));
	if (!d)
		return SIGV4_INTERNAL_ERROR;
	d->mode = o->mode;
	d->signed_chunks = signed_chunks;
	d->state = ST_SIZE;
	d->expected = o->decoded_length;
	d->out = o->out;
	d->out_ctx = o->out_ctx;
	d->verify_checksum = o->verify_checksum;
	if (signed_chunks) {
		memcpy(d->key, o->signing_key, 32);
		memcpy(d->amz_date, o->amz_date, 17);
		snprintf(d->scope, sizeof(d->scope), "%s", o->scope);
		memcpy(d->prev_sig, o->seed_signature, 65);
		d->md = EVP_MD_CTX_new();
		if (!d->md) {
			chunked_free(d);
			return SIGV4_INTERNAL_ERROR;
		}
	}
	if (o->trailer && *o->trailer) {
		d->trailer_decl = strdup(o->trailer);
		if (!d->trailer_decl) {
			chunked_free(d);
			return SIGV4_INTERNAL_ERROR;
		}
		for (char *p = d->trailer_decl; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	if (d->verify_checksum && d->trailer_decl) {
		d->ck_algo = declared_checksum(d->trailer_decl);
		if (d->ck_algo != CHECKSUM_NONE && checksum_init(&d->ck, d->ck_algo) != 0) {
			chunked_free(d);
			return SIGV4_INTERNAL_ERROR;
		}
		if (d->ck_algo == CHECKSUM_NONE && strstr(d->trailer_decl, "x-amz-checksum-")) {
			chunked_free(d);
			return SIGV4_INVALID_ARGUMENT;
		}
	}
	*out = d;
	return SIGV4_OK;
}

int chunked_new_from_auth(const sigv4_auth *a, chunked_out_fn out, void *out_ctx, chunked **dec)
{
	*dec = NULL;
	if (!a || a->status != SIGV4_OK)
		return SIGV4_INVALID_ARGUMENT;
	chunked_opts o = {
		.mode = a->payload_mode,
		.signing_key = a->signing_key,
		.amz_date = a->amz_date,
		.scope = a->scope,
		.seed_signature = a->signature,
		.decoded_length = a->decoded_length,
		.trailer = a->trailer[0] ? a->trailer : NULL,
		.verify_checksum = 1,
		.out = out,
		.out_ctx = out_ctx,
	};
	return chunked_new(&o, dec);
}

void chunked_free(chunked *d)
{
	if (!d)
		return;
	OPENSSL_cleanse(d->key, sizeof(d->key));
	if (d->md)
		EVP_MD_CTX_free(d->md);
	checksum_clear(&d->ck);
	free(d->trailer_decl);
	for (size_t i = 0; i < d->ntrailers; i++) {
		free(d->tname[i]);
		free(d->tvalue[i]);
	}
	free(d);
}

/* ---- frame handling ------------------------------------------------------------ */

static int verify_chunk(chunked *d, const unsigned char h[32])
{
	char sig[65];
	chunked_sign_chunk(d->key, d->amz_date, d->scope, d->prev_sig, h, sig);
	if (CRYPTO_memcmp(sig, d->chunk_sig, 64) != 0)
		return dfail(d, SIGV4_SIGNATURE_MISMATCH,
			     "The chunk signature of the chunk ending at payload byte %llu does "
			     "not match.",
			     (unsigned long long)d->total);
	memcpy(d->prev_sig, sig, 65);
	return SIGV4_OK;
}

/* A complete chunk header line (without CRLF) is in d->line. */
static int handle_size_line(chunked *d)
{
	const char *s = d->line;
	size_t n = d->line_len;
	size_t i = 0;
	uint64_t size = 0;
	while (i < n && isxdigit((unsigned char)s[i])) {
		if (i >= 16 || size > (MAX_CHUNK_SIZE >> 4))
			return dfail(d, SIGV4_INVALID_ARGUMENT, "Chunk size is too large.");
		int c = (unsigned char)s[i];
		size = size * 16 + (uint64_t)(isdigit(c) ? c - '0' : (tolower(c) - 'a' + 10));
		i++;
	}
	if (i == 0)
		return dfail(d, SIGV4_INVALID_REQUEST, "Invalid chunk size in aws-chunked body.");
	if (size > MAX_CHUNK_SIZE)
		return dfail(d, SIGV4_INVALID_ARGUMENT, "Chunk size is too large.");
	if (d->signed_chunks) {
		static const char ext[] = ";chunk-signature=";
		size_t el = sizeof(ext) - 1;
		if (n - i != el + 64 || memcmp(s + i, ext, el) != 0 ||
		    !is_hex64_lower(s + i + el, 64))
			return dfail(d, SIGV4_INVALID_REQUEST,
				     "Invalid chunk header: expected ';chunk-signature=<64 hex>'.");
		memcpy(d->chunk_sig, s + i + el, 64);
		d->chunk_sig[64] = '\0';
	} else if (i != n) {
		return dfail(d, SIGV4_INVALID_REQUEST,
			     "Invalid chunk header: unexpected chunk extension in unsigned body.");
	}
	if (d->expected >= 0 && size > (uint64_t)d->expected - d->total)
		return dfail(d, SIGV4_INVALID_ARGUMENT,
			     "The aws-chunked body is longer than x-amz-decoded-content-length.");
	if (size == 0) {
		if (d->signed_chunks) {
			unsigned char h[32];
			SHA256((const unsigned char *)"", 0, h);
			int st = verify_chunk(d, h);
			if (st)
				return st;
		}
		d->state = d->mode == SIGV4_PAYLOAD_STREAMING_SIGNED ? ST_FINAL_CRLF : ST_TRAILER;
		return SIGV4_OK;
	}
	d->remaining = size;
	if (d->signed_chunks && EVP_DigestInit_ex(d->md, EVP_sha256(), NULL) != 1)
		return dfail(d, SIGV4_INTERNAL_ERROR, "SHA-256 init failed");
	d->state = ST_DATA;
	return SIGV4_OK;
}

static int cmp_trailer_idx(const chunked *d, size_t a, size_t b)
{
	return strcmp(d->tname[a], d->tname[b]);
}

/* Checks trailers once the terminating empty line arrived (or at finish). */
static int trailers_complete(chunked *d)
{
	if (d->mode == SIGV4_PAYLOAD_STREAMING_SIGNED_TRAILER && !d->trailer_sig_seen)
		return dfail(d, SIGV4_SIGNATURE_MISMATCH, "The trailer signature is missing.");
	if (d->trailer_decl) {
		/* every declared trailer must have arrived */
		const char *p = d->trailer_decl;
		while (*p) {
			while (*p == ' ' || *p == ',')
				p++;
			const char *e = p;
			while (*e && *e != ',')
				e++;
			const char *t = e;
			while (t > p && t[-1] == ' ')
				t--;
			if (t > p) {
				char name[128];
				size_t l = (size_t)(t - p) < sizeof(name) - 1 ? (size_t)(t - p)
									      : sizeof(name) - 1;
				memcpy(name, p, l);
				name[l] = '\0';
				if (!chunked_trailer_get(d, name))
					return dfail(d, SIGV4_INVALID_REQUEST,
						     "The trailer %s declared in x-amz-trailer was "
						     "not sent.",
						     name);
			}
			p = e;
		}
	}
	if (d->ck_algo != CHECKSUM_NONE) {
		const char *hn = checksum_header_name(d->ck_algo);
		const char *v = chunked_trailer_get(d, hn);
		char mine[CHECKSUM_B64_MAX];
		if (!v)
			return dfail(d, SIGV4_INVALID_REQUEST, "The trailer %s was not sent.", hn);
		if (checksum_final_base64(&d->ck, mine) != 0)
			return dfail(d, SIGV4_INTERNAL_ERROR, "checksum failed");
		if (!checksum_value_valid(d->ck_algo, v))
			return dfail(d, SIGV4_INVALID_REQUEST,
				     "Value for %s trailing header is invalid.", hn);
		if (!checksum_value_equal(d->ck_algo, v, mine))
			return dfail(d, SIGV4_BAD_DIGEST,
				     "The %s you specified did not match the calculated checksum.",
				     checksum_algo_name(d->ck_algo));
	}
	d->state = ST_DONE;
	return SIGV4_OK;
}

static int verify_trailer_sig(chunked *d, const char *sig, size_t sl)
{
	if (d->trailer_sig_seen)
		return dfail(d, SIGV4_INVALID_REQUEST, "Duplicate x-amz-trailer-signature.");
	d->trailer_sig_seen = 1;
	if (!is_hex64_lower(sig, sl))
		return dfail(d, SIGV4_SIGNATURE_MISMATCH, "The trailer signature is malformed.");
	/* canonical trailers: sorted by name, "name:value\n" */
	size_t idx[CHUNKED_MAX_TRAILER_COUNT];
	for (size_t i = 0; i < d->ntrailers; i++)
		idx[i] = i;
	for (size_t i = 1; i < d->ntrailers; i++)
		for (size_t j = i; j > 0 && cmp_trailer_idx(d, idx[j - 1], idx[j]) > 0; j--) {
			size_t t = idx[j];
			idx[j] = idx[j - 1];
			idx[j - 1] = t;
		}
	size_t cap = d->trailer_bytes + 2 * d->ntrailers + 1;
	char *buf = malloc(cap);
	if (!buf)
		return dfail(d, SIGV4_INTERNAL_ERROR, "out of memory");
	size_t len = 0;
	for (size_t i = 0; i < d->ntrailers; i++) {
		len += (size_t)snprintf(buf + len, cap - len, "%s:%s\n", d->tname[idx[i]],
					d->tvalue[idx[i]]);
	}
	char mine[65];
	chunked_sign_trailer(d->key, d->amz_date, d->scope, d->prev_sig, buf, len, mine);
	free(buf);
	if (CRYPTO_memcmp(mine, sig, 64) != 0)
		return dfail(d, SIGV4_SIGNATURE_MISMATCH, "The trailer signature does not match.");
	memcpy(d->prev_sig, mine, 65);
	return SIGV4_OK;
}

/* A complete trailer line (without CRLF) is in d->line. */
static int handle_trailer_line(chunked *d)
{
	if (d->line_len == 0)
		return trailers_complete(d);
	if (d->trailer_sig_seen)
		return dfail(d, SIGV4_INVALID_REQUEST,
			     "Trailer after x-amz-trailer-signature in aws-chunked body.");
	d->trailer_bytes += d->line_len;
	if (d->trailer_bytes > CHUNKED_MAX_TRAILERS)
		return dfail(d, SIGV4_INVALID_REQUEST, "The trailers are too large.");
	char *colon = memchr(d->line, ':', d->line_len);
	if (!colon || colon == d->line)
		return dfail(d, SIGV4_INVALID_REQUEST,
			     "Malformed trailer line in aws-chunked body.");
	size_t nl = (size_t)(colon - d->line);
	for (size_t i = 0; i < nl; i++) {
		unsigned char c = (unsigned char)d->line[i];
		if (!(isalnum(c) || c == '-' || c == '_'))
			return dfail(d, SIGV4_INVALID_REQUEST, "Malformed trailer name.");
		d->line[i] = (char)tolower(c);
	}
	const char *v = colon + 1;
	const char *ve = d->line + d->line_len;
	while (v < ve && (*v == ' ' || *v == '\t'))
		v++;
	while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
		ve--;
	for (const char *p = v; p < ve; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t')
			return dfail(d, SIGV4_INVALID_REQUEST, "Malformed trailer value.");
	if (nl == 23 && memcmp(d->line, "x-amz-trailer-signature", 23) == 0) {
		if (d->mode != SIGV4_PAYLOAD_STREAMING_SIGNED_TRAILER)
			return dfail(d, SIGV4_INVALID_REQUEST,
				     "Unexpected x-amz-trailer-signature in an unsigned body.");
		return verify_trailer_sig(d, v, (size_t)(ve - v));
	}
	*colon = '\0';
	if (!trailer_declared(d->trailer_decl, d->line))
		return dfail(d, SIGV4_INVALID_REQUEST,
			     "The trailer %.64s was not declared in x-amz-trailer.", d->line);
	if (chunked_trailer_get(d, d->line))
		return dfail(d, SIGV4_INVALID_REQUEST, "Duplicate trailer %.64s.", d->line);
	if (d->ntrailers >= CHUNKED_MAX_TRAILER_COUNT)
		return dfail(d, SIGV4_INVALID_REQUEST, "Too many trailers.");
	char *n = strdup(d->line);
	char *val = strndup(v, (size_t)(ve - v));
	if (!n || !val) {
		free(n);
		free(val);
		return dfail(d, SIGV4_INTERNAL_ERROR, "out of memory");
	}
	d->tname[d->ntrailers] = n;
	d->tvalue[d->ntrailers] = val;
	d->ntrailers++;
	return SIGV4_OK;
}

/* Collects a CRLF-terminated line; returns 1 when complete, 0 when more input
 * is needed, or a negative value on error (d->err set). *used bytes taken. */
static int take_line(chunked *d, const unsigned char *p, size_t n, size_t *used)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = p[i++];
		if (d->line_cr) {
			if (c != '\n') {
				*used = i;
				dfail(d, SIGV4_INVALID_REQUEST,
				      "Malformed line ending in aws-chunked body.");
				return -1;
			}
			d->line_cr = 0;
			d->line[d->line_len] = '\0';
			*used = i;
			return 1;
		}
		if (c == '\r') {
			d->line_cr = 1;
			continue;
		}
		if (c == '\n' || c == '\0') {
			*used = i;
			dfail(d, SIGV4_INVALID_REQUEST, "Malformed line in aws-chunked body.");
			return -1;
		}
		if (d->line_len >= CHUNKED_MAX_LINE) {
			*used = i;
			dfail(d, SIGV4_INVALID_REQUEST, "Line too long in aws-chunked body.");
			return -1;
		}
		d->line[d->line_len++] = (char)c;
	}
	*used = i;
	return 0;
}

int chunked_feed(chunked *d, const void *data, size_t len)
{
	if (!d)
		return SIGV4_INTERNAL_ERROR;
	const unsigned char *p = data;
	while (len > 0 && !d->err) {
		switch (d->state) {
		case ST_SIZE:
		case ST_TRAILER:
		case ST_FINAL_CRLF: {
			size_t used = 0;
			int r = take_line(d, p, len, &used);
			p += used;
			len -= used;
			if (r < 0)
				return d->err;
			if (r == 0)
				break;
			int st;
			if (d->state == ST_SIZE)
				st = handle_size_line(d);
			else if (d->state == ST_TRAILER)
				st = handle_trailer_line(d);
			else if (d->line_len != 0)
				st = dfail(d, SIGV4_INVALID_REQUEST,
					   "Unexpected data after the final chunk.");
			else {
				d->state = ST_DONE;
				st = SIGV4_OK;
			}
			d->line_len = 0;
			if (st)
				return st;
			break;
		}
		case ST_DATA: {
			size_t n = len < d->remaining ? len : (size_t)d->remaining;
			if (d->signed_chunks)
				EVP_DigestUpdate(d->md, p, n);
			if (d->ck_algo != CHECKSUM_NONE)
				checksum_update(&d->ck, p, n);
			if (d->out(d->out_ctx, p, n) != 0)
				return dfail(d, SIGV4_ABORTED, "The receiver refused the data.");
			d->total += n;
			d->remaining -= n;
			p += n;
			len -= n;
			if (d->remaining == 0)
				d->state = ST_DATA_CR;
			break;
		}
		case ST_DATA_CR:
		case ST_DATA_LF: {
			char want = d->state == ST_DATA_CR ? '\r' : '\n';
			if (*p != want)
				return dfail(d, SIGV4_INVALID_REQUEST,
					     "Chunk data is not followed by CRLF (chunk size "
					     "wrong?).");
			p++;
			len--;
			if (d->state == ST_DATA_CR) {
				d->state = ST_DATA_LF;
				break;
			}
			if (d->signed_chunks) {
				unsigned char h[32];
				unsigned int hl = 32;
				if (EVP_DigestFinal_ex(d->md, h, &hl) != 1)
					return dfail(d, SIGV4_INTERNAL_ERROR, "SHA-256 failed");
				int st = verify_chunk(d, h);
				if (st)
					return st;
			}
			d->state = ST_SIZE;
			break;
		}
		case ST_DONE:
			return dfail(d, SIGV4_INVALID_REQUEST,
				     "Unexpected data after the end of the aws-chunked body.");
		default:
			return dfail(d, SIGV4_INTERNAL_ERROR, "bad decoder state");
		}
	}
	return d->err;
}

int chunked_finish(chunked *d)
{
	if (!d)
		return SIGV4_INTERNAL_ERROR;
	if (d->err)
		return d->err;
	/* Tolerate a last trailer line without CRLF and a missing final empty
	 * line (some SDKs end the body there); the frames themselves are complete. */
	if (d->state == ST_TRAILER && d->line_len > 0) {
		d->line[d->line_len] = '\0';
		int st = handle_trailer_line(d);
		d->line_len = 0;
		d->line_cr = 0;
		if (st)
			return st;
	}
	if (d->line_len == 0) {
		d->line_cr = 0;
		if (d->state == ST_FINAL_CRLF)
			d->state = ST_DONE;
		else if (d->state == ST_TRAILER &&
			 (d->ntrailers > 0 || d->trailer_sig_seen || !d->trailer_decl)) {
			int st = trailers_complete(d);
			if (st)
				return st;
		}
	}
	if (d->state != ST_DONE)
		return dfail(d, SIGV4_INCOMPLETE_BODY,
			     "The aws-chunked body ended early (after %llu payload bytes).",
			     (unsigned long long)d->total);
	if (d->expected >= 0 && d->total != (uint64_t)d->expected)
		return dfail(d, SIGV4_INCOMPLETE_BODY,
			     "The decoded body has %llu bytes but x-amz-decoded-content-length is "
			     "%lld.",
			     (unsigned long long)d->total, (long long)d->expected);
	return SIGV4_OK;
}

int chunked_done(const chunked *d)
{
	return d && d->state == ST_DONE && !d->err;
}

uint64_t chunked_decoded_bytes(const chunked *d)
{
	return d ? d->total : 0;
}

const char *chunked_message(const chunked *d)
{
	return d ? d->msg : "";
}

size_t chunked_trailer_count(const chunked *d)
{
	return d ? d->ntrailers : 0;
}

int chunked_trailer_at(const chunked *d, size_t i, const char **name, const char **value)
{
	if (!d || i >= d->ntrailers)
		return -1;
	if (name)
		*name = d->tname[i];
	if (value)
		*value = d->tvalue[i];
	return 0;
}

const char *chunked_trailer_get(const chunked *d, const char *name)
{
	if (!d || !name)
		return NULL;
	for (size_t i = 0; i < d->ntrailers; i++)
		if (strcasecmp(d->tname[i], name) == 0)
			return d->tvalue[i];
	return NULL;
}
