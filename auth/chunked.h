/*
 * chunked.h - incremental decoder for aws-chunked request bodies.
 *
 * What it is: a push parser. The daemon feeds it the raw body in pieces of
 * any size (one byte, a megabyte); it parses the frames
 *
 *   signed:   <hex-size>;chunk-signature=<64 hex>\r\n<data>\r\n ... 0;chunk-signature=..\r\n
 *             then "\r\n" (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) or trailers
 *             "name:value\r\n"... "x-amz-trailer-signature:<64 hex>\r\n\r\n"
 *             (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER)
 *   unsigned: <hex-size>\r\n<data>\r\n ... 0\r\n then trailers "name:value\r\n"... "\r\n"
 *             (STREAMING-UNSIGNED-PAYLOAD-TRAILER)
 *
 * and hands the decoded payload bytes to an output callback as soon as they
 * arrive; nothing beyond one header/trailer line is buffered. In signed modes
 * each chunk's signature chain (seeded by the request signature) is checked
 * with an incrementally computed SHA-256 of the chunk data, and the trailer
 * signature likewise. Optionally the checksum named by x-amz-trailer is
 * computed over the payload and compared with the trailer (BadDigest).
 *
 * IMPORTANT: bytes of a chunk are emitted before that chunk's signature can
 * be checked (the check needs the whole chunk). The caller must treat
 * everything it received as provisional and commit only when
 * chunked_finish() returns SIGV4_OK; on any other result, discard.
 *
 * Not here: request signature verification (sigv4.h), HTTP.
 * Status codes are enum sigv4_status (map with sigv4_status_code()).
 * A decoder is used by one thread at a time.
 */
#ifndef SL_AUTH_CHUNKED_H
#define SL_AUTH_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

#include "auth/sigv4.h"

#define CHUNKED_MAX_LINE 4096	  /* longest chunk header / trailer line */
#define CHUNKED_MAX_TRAILERS 8192 /* total bytes of all trailer lines */
#define CHUNKED_MAX_TRAILER_COUNT 16

typedef struct chunked chunked;

/* Receives decoded payload bytes in order. Return 0 to continue; any other
 * value stops the decoder, and chunked_feed returns SIGV4_ABORTED. */
typedef int (*chunked_out_fn)(void *ctx, const void *data, size_t len);

typedef struct chunked_opts {
	int mode; /* SIGV4_PAYLOAD_STREAMING_{SIGNED,SIGNED_TRAILER,UNSIGNED_TRAILER} */
	/* Signed modes only (copied; may be freed after chunked_new): */
	const unsigned char *signing_key; /* 32 bytes (sigv4_auth.signing_key) */
	const char *amz_date;		  /* "YYYYMMDDTHHMMSSZ" */
	const char *scope;		  /* "YYYYMMDD/region/s3/aws4_request" */
	const char *seed_signature;	  /* 64 hex: the request's signature */
	int64_t decoded_length;		  /* expected payload length; -1: not checked */
	const char *trailer;		  /* x-amz-trailer header value or NULL; trailers must be
					   * among these names (comma-separated) */
	int verify_checksum;		  /* non-zero: compute the x-amz-checksum-* algorithm
					   * named in `trailer` over the payload and compare with
					   * the received trailer value (BadDigest on mismatch) */
	chunked_out_fn out;		  /* required */
	void *out_ctx;
} chunked_opts;

/* Creates a decoder. Returns SIGV4_OK, SIGV4_INVALID_ARGUMENT (bad opts,
 * e.g. an unknown checksum in `trailer` with verify_checksum) or
 * SIGV4_INTERNAL_ERROR (no memory). */
int chunked_new(const chunked_opts *o, chunked **out);

/* The usual way: options taken from a successful sigv4_verify result
 * (mode, key, date, scope, seed signature, decoded length, trailer) with
 * verify_checksum on. SIGV4_INVALID_ARGUMENT if a is not a streaming mode. */
int chunked_new_from_auth(const sigv4_auth *a, chunked_out_fn out, void *out_ctx, chunked **dec);

/* Feeds the next len bytes of the body. Returns SIGV4_OK or an error that
 * sticks (later calls return it again):
 *   SIGV4_SIGNATURE_MISMATCH   a chunk or trailer signature is wrong
 *   SIGV4_INVALID_REQUEST      malformed framing (bad hex size, missing CRLF,
 *                              over-long line, bytes after the end, trailer
 *                              not announced in x-amz-trailer, ...)
 *   SIGV4_INVALID_ARGUMENT     sizes overflow / exceed the decoded length
 *   SIGV4_BAD_DIGEST           trailing checksum mismatch (verify_checksum)
 *   SIGV4_ABORTED              the output callback returned non-zero */
int chunked_feed(chunked *d, const void *data, size_t len);

/* Call once the body has ended. Returns SIGV4_OK only if the final chunk
 * and trailers were complete and verified and the decoded length matched;
 * SIGV4_INCOMPLETE_BODY if the stream stopped early or the decoded length
 * differs from the expected one; or the sticky error from chunked_feed. */
int chunked_finish(chunked *d);

/* Non-zero once the terminating frame (and trailers) were fully parsed. */
int chunked_done(const chunked *d);
/* Payload bytes emitted so far. */
uint64_t chunked_decoded_bytes(const chunked *d);
/* Detail of the last error ("" if none). Owned by d. */
const char *chunked_message(const chunked *d);

/* Trailers parsed after the final chunk (x-amz-trailer-signature excluded).
 * Names are lowercased, values trimmed; strings are owned by d. */
size_t chunked_trailer_count(const chunked *d);
int chunked_trailer_at(const chunked *d, size_t i, const char **name, const char **value);
/* Value of a trailer by name (case-insensitive) or NULL. */
const char *chunked_trailer_get(const chunked *d, const char *name);

/* NULL is a no-op. Wipes the signing key. */
void chunked_free(chunked *d);

/* ---- encoding side (tests, replication client) ---------------------------- */

/* Signature of one chunk: HMAC(key, "AWS4-HMAC-SHA256-PAYLOAD\n" date "\n"
 * scope "\n" prev_sig "\n" sha256("") "\n" hex(data_sha256)) as 64 hex. */
void chunked_sign_chunk(const unsigned char key[32], const char *amz_date, const char *scope,
			const char *prev_sig, const unsigned char data_sha256[32], char out[65]);
/* Signature of the trailers: HMAC(key, "AWS4-HMAC-SHA256-TRAILER\n" date
 * "\n" scope "\n" prev_sig "\n" hex(sha256(trailer_bytes))), where
 * trailer_bytes are the canonical trailer lines "name:value\n" ... */
void chunked_sign_trailer(const unsigned char key[32], const char *amz_date, const char *scope,
			  const char *prev_sig, const void *trailer_bytes, size_t len,
			  char out[65]);

#endif
