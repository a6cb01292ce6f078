/*
 * sigv4.h - AWS Signature Version 4 verification (and signing) for S3 requests.
 *
 * What it is: a pure function of the request head (method, raw path, raw
 * query, headers, time) plus a secret-lookup callback. It knows the three
 * ways an S3 request can be authenticated: the Authorization header form,
 * the presigned-URL query form, and no authentication at all (anonymous).
 * Not here: HTTP parsing, policies/ACLs, key storage, the body itself (the
 * aws-chunked decoder is auth/chunked.h, checksums are auth/checksum.h).
 *
 * The daemon's flow, per request:
 *
 *   1. After the headers arrive, fill a sigv4_request (raw path exactly as on
 *      the wire, still percent-encoded; raw query without the '?'; every
 *      header as received) and call sigv4_verify(cfg, &req, &auth).
 *        - SIGV4_OK:        authenticated as auth.access_key.
 *        - SIGV4_ANONYMOUS: no credentials at all; deny (AccessDenied 403) or
 *                           allow per bucket policy. auth.access_key is "".
 *        - anything else:   reply with sigv4_status_code(st) /
 *                           sigv4_status_http(st) and auth.message.
 *                           (Optional: SIGV4_MISSING_SECURITY_HEADER can be
 *                           rescued for curl --data uploads, see
 *                           sigv4_verify_with_payload.)
 *      Header form: every x-amz-* header present must be signed (else
 *      AccessDenied). Presigned form: unsigned headers are not checked.
 *   2. Look at auth.payload_mode to handle the body:
 *        - SIGV4_PAYLOAD_HASH: auth.payload_hash holds the hex SHA-256 the
 *          client signed. Hash the body while storing it (SHA-256) and at the
 *          end call sigv4_payload_check(&auth, digest); a non-OK result
 *          (SIGV4_CONTENT_SHA256_MISMATCH -> XAmzContentSHA256Mismatch 400)
 *          means the upload must be discarded.
 *        - SIGV4_PAYLOAD_UNSIGNED: take the body as is (presigned URLs are
 *          always this mode).
 *        - SIGV4_PAYLOAD_STREAMING_*: the body is aws-chunked. Create a
 *          decoder with chunked_new_from_auth(&auth, out_fn, ctx, &dec) (see
 *          chunked.h), feed it each body piece with chunked_feed(), and call
 *          chunked_finish() when the body ends. Decoded payload bytes come out
 *          through out_fn as they arrive. Commit only if chunked_finish()
 *          returns SIGV4_OK. The stored object must not keep "aws-chunked"
 *          in its Content-Encoding, and its size is auth.decoded_length.
 *   3. sigv4_auth_clear(&auth) when the request is done (wipes the signing key).
 *
 * All results are one enum (sigv4_status) shared with chunked.h, each value
 * mapping 1:1 to an S3 error code string and HTTP status.
 *
 * Thread-safety: no shared state; every function is reentrant. The secret
 * returned by the lookup callback is held only on the stack of sigv4_verify
 * and wiped before it returns; only the derived signing key (specific to the
 * day, region and service) is kept in sigv4_auth for the chunk verifier.
 */
#ifndef SL_AUTH_SIGV4_H
#define SL_AUTH_SIGV4_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Result of verification, of the payload check and of the chunked decoder.
 * Each maps to one S3 error code (sigv4_status_code) and HTTP status. */
enum sigv4_status {
	SIGV4_OK = 0,			 /* authenticated / body good (200) */
	SIGV4_ANONYMOUS = 1,		 /* no credentials at all: AccessDenied 403 if denied */
	SIGV4_SIGNATURE_MISMATCH = 2,	 /* SignatureDoesNotMatch 403 */
	SIGV4_INVALID_ACCESS_KEY = 3,	 /* InvalidAccessKeyId 403 (unknown key) */
	SIGV4_AUTH_HEADER_MALFORMED = 4, /* AuthorizationHeaderMalformed 400 */
	SIGV4_AUTH_QUERY_ERROR = 5,	 /* AuthorizationQueryParametersError 400 */
	SIGV4_ACCESS_DENIED = 6, /* AccessDenied 403 (expired presign, disabled key, no date) */
	SIGV4_TIME_SKEWED = 7,	 /* RequestTimeTooSkewed 403 */
	SIGV4_MISSING_SECURITY_HEADER = 8,  /* MissingSecurityHeader 400 (x-amz-content-sha256) */
	SIGV4_INVALID_ARGUMENT = 9,	    /* InvalidArgument 400 */
	SIGV4_CONTENT_SHA256_MISMATCH = 10, /* XAmzContentSHA256Mismatch 400 */
	SIGV4_INCOMPLETE_BODY = 11,	    /* IncompleteBody 400 (truncated aws-chunked body) */
	SIGV4_INVALID_REQUEST = 12,	    /* InvalidRequest 400 (bad framing, SigV2, ...) */
	SIGV4_BAD_DIGEST = 13,		    /* BadDigest 400 (trailing checksum mismatch) */
	SIGV4_INTERNAL_ERROR = 14,	    /* InternalError 500 (lookup failed, out of memory) */
	SIGV4_ABORTED = 15,		    /* the caller's output callback refused data (500) */
};

/* "SignatureDoesNotMatch", ... ; SIGV4_OK gives "OK", SIGV4_ANONYMOUS and
 * SIGV4_ACCESS_DENIED give "AccessDenied", SIGV4_ABORTED "InternalError".
 * Unknown values give "InternalError". Never NULL. */
const char *sigv4_status_code(int st);
/* HTTP status for the code (200, 400, 403, 500). */
int sigv4_status_http(int st);
/* A generic English message for the code (the one AWS uses where there is
 * one). sigv4_auth.message and chunked_message() carry a more precise one. */
const char *sigv4_status_message(int st);

/* How the request body is protected (from x-amz-content-sha256). */
enum sigv4_payload {
	SIGV4_PAYLOAD_NONE = 0,			    /* not authenticated (anonymous/error) */
	SIGV4_PAYLOAD_HASH = 1,			    /* hex SHA-256 in auth.payload_hash */
	SIGV4_PAYLOAD_UNSIGNED = 2,		    /* UNSIGNED-PAYLOAD (and all presigned) */
	SIGV4_PAYLOAD_STREAMING_SIGNED = 3,	    /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD */
	SIGV4_PAYLOAD_STREAMING_SIGNED_TRAILER = 4, /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER */
	SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER = 5, /* STREAMING-UNSIGNED-PAYLOAD-TRAILER */
};

/* Which form of authentication the request used. */
enum sigv4_form {
	SIGV4_FORM_NONE = 0,   /* anonymous */
	SIGV4_FORM_HEADER = 1, /* Authorization: AWS4-HMAC-SHA256 ... */
	SIGV4_FORM_QUERY = 2,  /* presigned URL (X-Amz-Signature in the query) */
};

/* One request header as received. Names are compared case-insensitively;
 * a name given more than once is joined with ',' in received order, as AWS
 * does. Values need not be trimmed. */
typedef struct sigv4_header {
	const char *name;
	const char *value;
} sigv4_header;

typedef struct sigv4_request {
	const char *method;    /* "GET", "PUT", ... */
	const char *raw_path;  /* as on the wire, percent-encoded, without '?' and query */
	const char *raw_query; /* after the '?', still encoded; NULL or "" if none */
	const sigv4_header *headers;
	size_t n_headers;
	time_t now; /* current time (unix seconds); tests pass a fixed one */
} sigv4_request;

#define SIGV4_MAX_KEY_ID 128 /* longest access key id accepted */
#define SIGV4_MAX_SECRET 128 /* longest secret the lookup may return */

/* Lookup result codes for sigv4_lookup_fn. */
enum sigv4_lookup {
	SIGV4_KEY_FOUND = 0,
	SIGV4_KEY_NOT_FOUND = 1, /* -> SIGV4_INVALID_ACCESS_KEY */
	SIGV4_KEY_DISABLED = 2,	 /* -> SIGV4_ACCESS_DENIED */
	SIGV4_KEY_ERROR = 3,	 /* lookup itself failed -> SIGV4_INTERNAL_ERROR */
};

/* Finds the secret of access_key_id and copies it NUL-terminated into
 * secret (capacity cap = SIGV4_MAX_SECRET + 1). Returns enum sigv4_lookup.
 * Called at most once per sigv4_verify, from the calling thread. */
typedef int (*sigv4_lookup_fn)(void *ctx, const char *access_key_id, char *secret, size_t cap);

typedef struct sigv4_config {
	sigv4_lookup_fn lookup;
	void *lookup_ctx;
	const char *region;    /* NULL or "": accept whatever region the client signed */
	unsigned max_skew_sec; /* header form clock-skew limit; 0 means 900 (15 min) */
} sigv4_config;

/* What sigv4_verify found out. Fixed size, no heap: lives on the caller's
 * stack or in its request struct. */
typedef struct sigv4_auth {
	int status;	   /* enum sigv4_status (also the return value) */
	char message[256]; /* human-readable detail for the error body */
	int form;	   /* enum sigv4_form */
	char access_key[SIGV4_MAX_KEY_ID + 1];
	char region[64];	       /* region from the credential scope */
	char amz_date[17];	       /* request time "YYYYMMDDTHHMMSSZ" */
	char scope[160];	       /* "YYYYMMDD/region/s3/aws4_request" */
	int payload_mode;	       /* enum sigv4_payload */
	char payload_hash[65];	       /* lowercase hex when payload_mode == HASH, else "" */
	char signature[65];	       /* request signature = seed signature for chunks */
	unsigned char signing_key[32]; /* kDate/kRegion/kService/kSigning; for chunk checks */
	int64_t decoded_length;	       /* x-amz-decoded-content-length, -1 if absent */
	char trailer[128];	       /* x-amz-trailer value (lowercased), "" if none */
	/* For SigV4 mismatch diagnosis (what S3 returns in its error body). */
	char string_to_sign[512];
	char canonical_request_hash[65]; /* hex SHA-256 of our canonical request */
} sigv4_auth;

/* Verifies the request. Returns enum sigv4_status and fills *out (always,
 * also on failure: status and message set). Never reads the body. */
int sigv4_verify(const sigv4_config *cfg, const sigv4_request *req, sigv4_auth *out);

/* Requests without an x-amz-content-sha256 header (curl 7.x --aws-sigv4):
 * without a body they verify as payload hash sha256(""). With a body (a
 * Content-Length other than 0, or Transfer-Encoding), a signature made over
 * sha256("") is accepted as SIGV4_PAYLOAD_UNSIGNED (what curl -T sends);
 * otherwise the client signed the body's own hash (curl --data), and
 * sigv4_verify returns SIGV4_MISSING_SECURITY_HEADER, but only after every
 * other check passed (key known, time fine, headers well-formed). A daemon that
 * wants to serve such clients may then read the body into an uncommitted
 * upload while hashing it (SHA-256) and call this with the digest; it
 * re-runs the verification using that hash as the payload hash. Commit only
 * if it returns SIGV4_OK. With an x-amz-content-sha256 header present it is
 * the same as sigv4_verify. */
int sigv4_verify_with_payload(const sigv4_config *cfg, const sigv4_request *req,
			      const unsigned char body_sha256[32], sigv4_auth *out);

/* For SIGV4_PAYLOAD_HASH: compares the SHA-256 of the received body with
 * the signed hash (constant time). Returns SIGV4_OK or
 * SIGV4_CONTENT_SHA256_MISMATCH; SIGV4_OK for all other payload modes. */
int sigv4_payload_check(const sigv4_auth *a, const unsigned char body_sha256[32]);

/* Wipes the signing key; the struct may be reused. NULL is a no-op. */
void sigv4_auth_clear(sigv4_auth *a);

/* Looks up a header by name (case-insensitive) in a header list; first match
 * or NULL. Handy for callers building requests. */
const char *sigv4_header_get(const sigv4_header *h, size_t n, const char *name);

/* ---- signing (tests, replication client) ---------------------------------- */

/* Formats t as "YYYYMMDDTHHMMSSZ" (UTC) into out[17]. */
void sigv4_format_date(time_t t, char out[17]);

/* Derives the signing key HMAC chain for secret/yyyymmdd/region/service. */
void sigv4_signing_key(const char *secret, const char *yyyymmdd, const char *region,
		       const char *service, unsigned char key[32]);

typedef struct sigv4_sign_params {
	const char *method;
	const char *raw_path;	     /* already percent-encoded as it will be sent */
	const char *raw_query;	     /* as it will be sent, NULL or "" for none */
	const sigv4_header *headers; /* ALL of these are signed: include host,
				      * x-amz-date (= amz_date below) and
				      * x-amz-content-sha256 (= payload_hash) yourself */
	size_t n_headers;
	const char *access_key;
	const char *secret;
	const char *region;
	const char *service;	  /* NULL means "s3" */
	const char *amz_date;	  /* "YYYYMMDDTHHMMSSZ", must match the x-amz-date header */
	const char *payload_hash; /* hex, UNSIGNED-PAYLOAD or STREAMING-...; NULL = UNSIGNED-PAYLOAD
				   */
} sigv4_sign_params;

/* Builds the Authorization header value
 * "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..." into
 * out (cap bytes). signature (may be NULL) receives the 64-hex signature
 * (the seed signature for a chunked upload). Returns 0, or -1 if out is too
 * small or a parameter is missing. */
int sigv4_sign(const sigv4_sign_params *p, char *out, size_t cap, char signature[65]);

/* Builds a presigned query: the caller's raw_query (if any) followed by the
 * X-Amz-Algorithm/Credential/Date/Expires/SignedHeaders/Signature
 * parameters, into out (cap bytes), without a leading '?'. Only "host" is
 * signed (p->headers must hold host; other headers are ignored);
 * payload_hash is ignored (UNSIGNED-PAYLOAD). Returns 0 or -1. */
int sigv4_presign(const sigv4_sign_params *p, unsigned expires_sec, char *out, size_t cap);

/* Percent-encodes src the AWS way (RFC 3986 unreserved kept, everything else
 * %XX uppercase; '/' kept when keep_slash) into out (cap bytes). Returns
 * the length written, or -1 if it does not fit. */
int sigv4_uri_encode(const char *src, size_t len, int keep_slash, char *out, size_t cap);

#endif
