/*
 * s3d_int.h - what the files of s3d/ share: the daemon context, the request
 * state, the response and XML helpers and the operation handlers.
 * Not a public header: only the .c files of s3d/ include it.
 *
 * Request life cycle (server.c):
 *   uri callback     -> s3d_req allocated with the raw request target
 *   1st access call  -> headers parsed, limits checked, SigV4 verified,
 *                       routed: a handler either answers at once or sets
 *                       r->sink (body consumer) and r->finish
 *   data calls       -> body pieces go through s3d_body_feed (aws-chunked
 *                       decoding, payload SHA-256, checksums) into the sink
 *   last call        -> payload checks, then r->finish queues the answer
 *   completed cb     -> log line, writer aborted if never committed, freed
 */
#ifndef SL_S3D_INT_H
#define SL_S3D_INT_H

#include <microhttpd.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>

#include "auth/checksum.h"
#include "auth/chunked.h"
#include "auth/sigv4.h"
#include "core/core.h"
#include "s3d/s3d.h"

#define S3D_MAX_XML_BODY (2u * 1024 * 1024) /* CompleteMultipartUpload, DeleteObjects */
#define S3D_MAX_SMALL_XML (64u * 1024)	    /* versioning, CORS, bucket configuration */
#define S3D_IO_BLOCK (256u * 1024)	    /* GET bodies are read this much at a time */
#define S3D_MAX_META_BYTES 2048		    /* x-amz-meta-* names + values, as AWS */
/* After an error found mid-body, up to this much more body is read and
 * dropped so the client gets the error answer; past it the connection is cut. */
#define S3D_MAX_DISCARD (64ull * 1024 * 1024)

struct s3d {
	core *core;
	s3d_opts o; /* strings below are owned copies */
	char *listen, *region, *access_key, *secret_key, *domains;
	struct MHD_Daemon *mhd;
	struct ops_cidrs *metrics_open; /* /metrics open to these addresses (access.c) */
	struct s3d_tls *tls;		/* native TLS (tls.c), NULL = plain HTTP */
	unsigned port;
	char owner_id[65];    /* canonical user id shown in listings */
	uint32_t boot;	      /* random per start, prefix of request ids */
	pthread_mutex_t lock; /* protects the fields below */
	pthread_cond_t idle;
	int inflight;
	uint64_t seq;
	struct s3d_watch *watch; /* header/body deadlines (server.c), own lock */
};

/* 1 if s is NULL or valid UTF-8 (util.c). */
int s3d_utf8_valid(const char *s);

/* ---- native TLS (tls.c) --------------------------------------------------- */

typedef struct s3d_tls s3d_tls;
/* Loads the PEM certificate chain and key (checked to match). */
int s3d_tls_new(const char *cert_path, const char *key_path, s3d_tls **out, sl_err *err);
/* Re-reads both files; on failure the current pair stays in use. */
int s3d_tls_reload(s3d_tls *t, sl_err *err);
void s3d_tls_free(s3d_tls *t);
/* The gnutls_certificate_retrieve_function2 for MHD_OPTION_HTTPS_CERT_CALLBACK;
 * it finds the s3d through the connection's socket context. */
void *s3d_tls_callback(void);

/* ---- growable text buffer (XML responses, small request bodies) ---------- */

typedef struct s3d_buf {
	char *p;
	size_t len, cap;
	int oom;
} s3d_buf;

void s3d_buf_free(s3d_buf *b);
void s3d_buf_add(s3d_buf *b, const void *data, size_t len);
void s3d_buf_puts(s3d_buf *b, const char *s);
void s3d_buf_printf(s3d_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s with XML escaping. */
void s3d_buf_xml(s3d_buf *b, const char *s);
/* <name>escaped text</name>; nothing if text is NULL. */
void s3d_buf_elem(s3d_buf *b, const char *name, const char *text);
/* Like s3d_buf_elem, percent-encoding text first when url is set (encoding-type=url). */
void s3d_buf_elem_enc(s3d_buf *b, const char *name, const char *text, int url);
/* <name>ISO 8601 time with milliseconds</name>. */
void s3d_buf_elem_time(s3d_buf *b, const char *name, int64_t ms);

/* ---- XML parsing (expat) -------------------------------------------------- */

/* Called at every element start (text NULL) and end (text = its character
 * data, trimmed). path[0..depth-1] are the element names from the root.
 * Return non-zero to reject the document. */
typedef int (*s3d_xml_fn)(void *ctx, int depth, const char *const *path, const char *text);
/* 0 on success, -1 if the document is malformed or a callback refused it. */
int s3d_xml_parse(const char *doc, size_t len, s3d_xml_fn fn, void *ctx);

/* ---- small helpers (util.c) ----------------------------------------------- */

/* Percent-decodes src[0..len) into a new string; '+' stays literal unless
 * plus_space. NULL if a %XX is malformed or decodes to NUL. */
char *s3d_url_decode(const char *src, size_t len, int plus_space);
/* Percent-encodes for encoding-type=url (unreserved and '/' kept). malloc'd. */
char *s3d_url_encode(const char *s);
void s3d_http_date(int64_t ms, char out[40]); /* RFC 1123 */
void s3d_iso_date(int64_t ms, char out[40]);  /* 2006-02-03T16:45:09.000Z */
/* Parses an HTTP date (RFC 1123, RFC 850, asctime); -1 if invalid. Seconds. */
int64_t s3d_parse_http_date(const char *s);
/* Strips quotes and W/ from an ETag value into out. */
void s3d_etag_unquote(const char *in, char *out, size_t cap);
/* Does a comma-separated If-Match/If-None-Match list contain etag (or "*")? */
int s3d_etag_list_match(const char *list, const char *etag);
int64_t s3d_now_ms(void);
/* Decimal parse: 0 ok, -1 bad. */
int s3d_parse_u64(const char *s, uint64_t *out);

/* ---- request -------------------------------------------------------------- */

typedef struct s3d_arg {
	char *name;  /* decoded */
	char *value; /* decoded; "" when absent */
	int has_value;
} s3d_arg;

typedef struct s3d_req s3d_req;
typedef int (*s3d_sink_fn)(s3d_req *r, const void *data, size_t len);
typedef void (*s3d_finish_fn)(s3d_req *r);

enum s3d_body { S3D_BODY_NONE = 0, S3D_BODY_MEM = 1, S3D_BODY_WRITER = 2 };

struct s3d_req {
	s3d *srv;
	struct MHD_Connection *conn;
	char id[20];
	char *uri;	 /* raw request target, owned */
	char *raw_path;	 /* owned copy of the path part (encoded) */
	char *raw_query; /* owned copy of the query (encoded), "" if none */
	const char *method;
	char *bucket; /* decoded; NULL for the service (GET /) */
	char *key;    /* decoded; NULL when the request names only a bucket */
	s3d_arg *args;
	size_t nargs;
	sigv4_header *hdrs;
	size_t nhdrs;
	sigv4_auth auth;
	int started, responded, counted;
	int in_body;		      /* inside a body-data call: answers are deferred */
	struct MHD_Response *pending; /* answer decided mid-body, queued at the end */
	unsigned pending_status;
	uint64_t discarded; /* body bytes read and dropped after an early answer */
	int64_t t0_us;
	int status;
	char errcode[48];
	uint64_t bytes_in, bytes_out;

	/* body pipeline */
	int body;		/* enum s3d_body */
	int64_t content_length; /* -1 if absent */
	uint64_t expect_len;	/* decoded payload length we will accept at most */
	chunked *dec;
	EVP_MD_CTX *sha; /* payload SHA-256 (SIGV4_PAYLOAD_HASH) */
	EVP_MD_CTX *md5; /* Content-MD5 of a MEM body */
	checksum ck;	 /* x-amz-checksum-* given as a header, verified at the end */
	int ck_algo;
	char ck_expect[CHECKSUM_B64_MAX];
	int ck_store_only;  /* x-amz-sdk-checksum-algorithm alone: compute and store */
	int trailer_algo;   /* checksum announced in x-amz-trailer */
	int ck_result_algo; /* checksum verified/computed for the body, after the end */
	char ck_result[CHECKSUM_B64_MAX];
	int has_md5;
	uint8_t content_md5[16];
	s3d_buf mem;
	size_t mem_max;
	uint64_t payload_bytes;
	core_writer *w;
	int part; /* writer is a multipart part */
	s3d_sink_fn sink;
	s3d_finish_fn finish;
	int body_failed;     /* an error answer was already queued from the body */
	struct s3d_conn *cn; /* the connection's deadline entry (server.c), NULL if none */

	/* headers added to whatever answer goes out (x-amz-delete-marker, ...) */
	char *xh_name[6], *xh_value[6];
	int nxh;

	/* access control and operations (access.c) */
	char op[40];	    /* operation name, for metrics and the access log */
	const char *action; /* policy action ("s3:GetObject") */
	char client_ip[64]; /* peer, or X-Forwarded-For behind a trusted proxy */
	int anonymous;	    /* no credentials: only bucket policies can allow */
	int key_root;	    /* the authenticated key is a root key */
	char *key_policy;   /* its identity policy (JSON), NULL if none */
	int key_entered;    /* counted in the per-key in-flight cap */
	int metered;	    /* counted in the in-flight gauge */

	/* operation scratch */
	char *meta; /* JSON metadata for the object being written */
	char *cond_match, *cond_none;
	int part_number;
	char *upload_id;
};

const char *s3d_arg_get(const s3d_req *r, const char *name); /* NULL if absent */
int s3d_arg_has(const s3d_req *r, const char *name);
const char *s3d_hdr(const s3d_req *r, const char *name); /* NULL if absent */

/* ---- answers (server.c) --------------------------------------------------- */

/* Queues resp with the common headers (request id, server, CORS) and frees
 * it. Every answer goes through here. */
void s3d_respond(s3d_req *r, unsigned status, struct MHD_Response *resp);
/* An empty answer. */
void s3d_respond_empty(s3d_req *r, unsigned status);
/* An XML document answer (takes the buffer's contents). */
void s3d_respond_xml(s3d_req *r, unsigned status, s3d_buf *b);
/* The response for an XML document (takes the buffer's contents), for
 * callers that add headers before s3d_respond. NULL if out of memory. */
struct MHD_Response *s3d_xml_response(s3d_req *r, s3d_buf *b);
#define S3D_XML_HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define S3D_XMLNS "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""
/* <Owner><ID>..</ID><DisplayName>..</DisplayName></Owner> */
void s3d_buf_owner(s3d_req *r, s3d_buf *b, const char *elem);
/* Remembers a header for r's answer, whatever it turns out to be. */
void s3d_req_header(s3d_req *r, const char *name, const char *value);
/* Adds a header to a response being built. */
void s3d_hadd(struct MHD_Response *resp, const char *name, const char *value);

/* ---- errors (errmap.c) ---------------------------------------------------- */

/* An S3 error answer: code like "NoSuchKey"; status 0 = the code's usual
 * status; msg NULL = the code's usual message. */
void s3d_error(s3d_req *r, const char *code, unsigned status, const char *msg);
/* An error answer for an SL_E* code from the core. */
void s3d_error_sl(s3d_req *r, int code, const sl_err *err);
/* The S3 code / HTTP status for an SL_E* code. */
const char *s3d_sl_code(int code, unsigned *status);

/* ---- body (body.c) -------------------------------------------------------- */

/* Prepares the body pipeline for r's auth mode; on failure answers and
 * returns -1. max: the largest decoded payload accepted. */
int s3d_body_setup(s3d_req *r, int kind, uint64_t max);
/* Feeds one piece of the raw body; on failure answers and returns -1. */
int s3d_body_feed(s3d_req *r, const char *data, size_t len);
/* Ends the body: framing, payload hash and checksum checks. On failure
 * answers and returns -1. */
int s3d_body_end(s3d_req *r);
/* Releases everything the pipeline holds (aborts an uncommitted writer). */
void s3d_body_free(s3d_req *r);
/* Name/value of the checksum that was verified for the body (header or
 * trailer); 0 if none. */
int s3d_body_checksum(s3d_req *r, const char **name, char value[CHECKSUM_B64_MAX]);

/* ---- access control and operations (access.c) ------------------------------ */

/* sigv4_lookup_fn over the key store; ctx is the s3d_req. */
int s3d_access_lookup(void *ctx, const char *access_key_id, char *secret, size_t cap);
/* Before verification: the client address, in-flight gauge. */
void s3d_access_begin(s3d_req *r);
/* After sigv4_verify returned st: limits, anonymous access, the policy
 * decision. 0 to go on routing; -1 if an answer was given. */
int s3d_access_auth(s3d_req *r, int st);
/* /metrics and /v1/meta/stats: 1 if answered. */
int s3d_access_route(s3d_req *r);
/* End of a request: metrics, access log line (termination "" if normal). */
void s3d_access_done(s3d_req *r, const char *termination, int64_t us);
void s3d_op_get_policy(s3d_req *r);
void s3d_op_put_policy(s3d_req *r);
void s3d_op_delete_policy(s3d_req *r);

/* ---- operations ----------------------------------------------------------- */

void s3d_route(s3d_req *r);

void s3d_op_list_buckets(s3d_req *r);
void s3d_op_create_bucket(s3d_req *r);
void s3d_op_delete_bucket(s3d_req *r);
void s3d_op_head_bucket(s3d_req *r);
void s3d_op_get_location(s3d_req *r);
void s3d_op_get_versioning(s3d_req *r);
void s3d_op_put_versioning(s3d_req *r);
void s3d_op_get_cors(s3d_req *r);
void s3d_op_put_cors(s3d_req *r);
void s3d_op_delete_cors(s3d_req *r);
void s3d_op_delete_objects(s3d_req *r);
void s3d_op_get_acl(s3d_req *r);

void s3d_op_list_objects(s3d_req *r, int v2);
void s3d_op_list_versions(s3d_req *r);
void s3d_op_list_uploads(s3d_req *r);

void s3d_op_put_object(s3d_req *r);
void s3d_op_get_object(s3d_req *r, int head);
void s3d_op_delete_object(s3d_req *r);
void s3d_op_copy_object(s3d_req *r);

void s3d_op_mpu_create(s3d_req *r);
void s3d_op_mpu_part(s3d_req *r);
void s3d_op_mpu_part_copy(s3d_req *r);
void s3d_op_mpu_complete(s3d_req *r);
void s3d_op_mpu_abort(s3d_req *r);
void s3d_op_mpu_list_parts(s3d_req *r);

/* CORS (cors.c) */
void s3d_op_cors_preflight(s3d_req *r);
/* Adds Access-Control-* headers for an actual request with Origin. */
void s3d_cors_headers(s3d_req *r, struct MHD_Response *resp);
/* 0 if doc is a valid CORSConfiguration, else -1 with msg. */
int s3d_cors_validate(const char *doc, size_t len, char *msg, size_t cap);

/* Shared object helpers (object.c) */
/* Builds the metadata JSON from request headers into r->meta; answers and
 * returns -1 on bad input (MetadataTooLarge). */
int s3d_meta_from_headers(s3d_req *r, const char *checksum_name, const char *checksum_value);
/* Parses x-amz-copy-source into bucket/key/version (malloc'd); -1 if bad. */
int s3d_copy_source(s3d_req *r, char **bucket, char **key, char **version);
/* Checks x-amz-copy-source-if-* against info; answers 412 and returns -1. */
int s3d_copy_conditions(s3d_req *r, const core_objinfo *src);
/* Reads Content-MD5 into r->content_md5; answers InvalidDigest and returns -1 if bad. */
int s3d_content_md5(s3d_req *r);

/* ---- parsers of untrusted request parts (exported for the fuzz targets) ---- */

#define S3D_MAX_RANGES 64
typedef struct s3d_range {
	uint64_t first, last;
} s3d_range;
/* Parses a Range header against size into at most S3D_MAX_RANGES ranges.
 * Returns the number of satisfiable ranges (>0), 0 if the header is to be
 * ignored (bad syntax), -1 if none is satisfiable (416). (object.c) */
int s3d_parse_range(const char *h, uint64_t size, s3d_range *out);
/* CompleteMultipartUpload body -> parts (malloc'd). 0, -1 malformed, -2 no
 * memory. (mpu.c) */
int s3d_parse_complete(const char *doc, size_t len, core_part **parts, size_t *n);
/* VersioningConfiguration body -> Status text ("" if absent). 0 or -1. (bucket.c) */
int s3d_parse_versioning(const char *doc, size_t len, char status[32]);
/* DeleteObjects body. 0, -1 malformed (or no object), -2 no memory; free the
 * list with s3d_del_list_free whatever the result. (bucket.c) */
typedef struct s3d_del_obj {
	char *key;
	char *version;
} s3d_del_obj;
typedef struct s3d_del_list {
	s3d_del_obj *objs;
	size_t n;
	int quiet;
} s3d_del_list;
int s3d_parse_delete(const char *doc, size_t len, s3d_del_list *out);
void s3d_del_list_free(s3d_del_list *l);

#endif
