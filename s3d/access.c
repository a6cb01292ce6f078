/*
 * access.c - access control and operations glue of the S3 daemon: the SigV4
 * secret lookup in the key store (auth/keys.h), which S3 operation and
 * policy action a request is (mirroring router.c), the policy decision
 * (identity policy of the key + the bucket's policy, auth/policy.h),
 * anonymous access through bucket policies, Get/Put/DeleteBucketPolicy,
 * failed-auth rate limits / in-flight caps / replay cache (ops/limits.h),
 * /metrics and /v1/meta/stats, and the JSON access log line with metrics
 * at the end of every request. Not here: SigV4 itself, the operations.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/crypto.h>

#include "auth/keys.h"
#include "auth/policy.h"
#include "core/maint.h"
#include "ops/accesslog.h"
#include "ops/limits.h"
#include "ops/metrics.h"
#include "s3d/s3d_int.h"

/* ---- key lookup -------------------------------------------------------------- */

int s3d_access_lookup(void *ctx, const char *access_key_id, char *secret, size_t cap)
{
	s3d_req *r = ctx;
	s3d *s = r->srv;
	r->key_root = 0;
	free(r->key_policy);
	r->key_policy = NULL;
	if (!s->o.keys) {
		/* No key store: the root key given at start is the only key. */
		if (strcmp(access_key_id, s->access_key) != 0)
			return SIGV4_KEY_NOT_FOUND;
		if (strlen(s->secret_key) + 1 > cap)
			return SIGV4_KEY_ERROR;
		strcpy(secret, s->secret_key);
		r->key_root = 1;
		return SIGV4_KEY_FOUND;
	}
	keys_info ki;
	sl_err err = { 0 };
	int rc = keys_secret(s->o.keys, access_key_id, secret, cap, &ki, &err);
	if (rc == SL_ENOKEY)
		return SIGV4_KEY_NOT_FOUND;
	if (rc < 0) {
		fprintf(s->o.log, "s3d: key lookup for %s failed: %s\n", access_key_id, err.msg);
		return SIGV4_KEY_ERROR;
	}
	int enabled = ki.enabled;
	r->key_root = ki.root;
	r->key_policy = ki.policy; /* taken over */
	ki.policy = NULL;
	keys_info_clear(&ki);
	if (!enabled) {
		OPENSSL_cleanse(secret, cap);
		return SIGV4_KEY_DISABLED;
	}
	return SIGV4_KEY_FOUND;
}

/* ---- classification ---------------------------------------------------------- */

/* /metrics is ours only as a plain GET (else it is the bucket "metrics");
 * everything under /v1/ is reserved. */
static int s3d_is_reserved_path(const s3d_req *r, const char *path)
{
	if (strcmp(r->raw_path, path) != 0)
		return 0;
	return strcmp(path, "/metrics") != 0 ||
	       (strcmp(r->method, "GET") == 0 && r->raw_query[0] == '\0');
}

/* Sets r->op and r->action for the request (same decisions as router.c). */
static void s3d_access_classify(s3d_req *r)
{
	const char *m = r->method, *op = "Unknown", *act = "s3:ListBucket";
	int get = !strcmp(m, "GET"), put = !strcmp(m, "PUT"), head = !strcmp(m, "HEAD"),
	    del = !strcmp(m, "DELETE"), post = !strcmp(m, "POST");
	if (s3d_is_reserved_path(r, "/metrics")) {
		op = "GetMetrics";
		act = "seglake:GetMetrics";
	} else if (s3d_is_reserved_path(r, "/v1/meta/stats")) {
		op = "GetStats";
		act = "seglake:GetStats";
	} else if (strncmp(r->raw_path, "/v1/repl/", 9) == 0) {
		int write = post && strncmp(r->raw_path, "/v1/repl/push/", 14) == 0;
		op = write ? "ReplicationWrite" : "ReplicationRead";
		act = write ? "seglake:ReplicationWrite" : "seglake:ReplicationRead";
	} else if (!r->bucket) {
		op = "ListBuckets";
		act = "s3:ListAllMyBuckets";
	} else if (!r->key) {
		if (get) {
			static const struct {
				const char *arg, *op, *act;
			} g[] = {
				{ "versioning", "GetBucketVersioning", "s3:GetBucketVersioning" },
				{ "cors", "GetBucketCors", "s3:GetBucketCORS" },
				{ "location", "GetBucketLocation", "s3:GetBucketLocation" },
				{ "versions", "ListObjectVersions", "s3:ListBucketVersions" },
				{ "uploads", "ListMultipartUploads",
				  "s3:ListBucketMultipartUploads" },
				{ "acl", "GetBucketAcl", "s3:GetBucketAcl" },
				{ "policy", "GetBucketPolicy", "s3:GetBucketPolicy" },
				{ "tagging", "GetBucketTagging", "s3:GetBucketTagging" },
				{ "lifecycle", "GetBucketLifecycle",
				  "s3:GetLifecycleConfiguration" },
				{ "encryption", "GetBucketEncryption",
				  "s3:GetEncryptionConfiguration" },
				{ "object-lock", "GetObjectLockConfiguration",
				  "s3:GetBucketObjectLockConfiguration" },
			};
			op = s3d_arg_get(r, "list-type") ? "ListObjectsV2" : "ListObjects";
			act = "s3:ListBucket";
			for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++)
				if (s3d_arg_has(r, g[i].arg)) {
					op = g[i].op;
					act = g[i].act;
					break;
				}
		} else if (put) {
			op = "CreateBucket";
			act = "s3:CreateBucket";
			if (s3d_arg_has(r, "versioning"))
				op = "PutBucketVersioning", act = "s3:PutBucketVersioning";
			else if (s3d_arg_has(r, "cors"))
				op = "PutBucketCors", act = "s3:PutBucketCORS";
			else if (s3d_arg_has(r, "policy"))
				op = "PutBucketPolicy", act = "s3:PutBucketPolicy";
			else if (s3d_arg_has(r, "acl"))
				op = "PutBucketAcl", act = "s3:PutBucketAcl";
			else if (s3d_arg_has(r, "tagging"))
				op = "PutBucketTagging", act = "s3:PutBucketTagging";
			else if (s3d_arg_has(r, "lifecycle"))
				op = "PutBucketLifecycle", act = "s3:PutLifecycleConfiguration";
		} else if (head) {
			op = "HeadBucket";
			act = "s3:ListBucket";
		} else if (del) {
			op = "DeleteBucket";
			act = "s3:DeleteBucket";
			if (s3d_arg_has(r, "cors"))
				op = "DeleteBucketCors", act = "s3:PutBucketCORS";
			else if (s3d_arg_has(r, "policy"))
				op = "DeleteBucketPolicy", act = "s3:DeleteBucketPolicy";
		} else if (post) {
			op = "DeleteObjects";
			act = "s3:DeleteObject";
		}
	} else {
		int has_version = s3d_arg_has(r, "versionId");
		if (get || head) {
			op = head ? "HeadObject" : "GetObject";
			act = has_version ? "s3:GetObjectVersion" : "s3:GetObject";
			if (get && s3d_arg_has(r, "uploadId"))
				op = "ListParts", act = "s3:ListMultipartUploadParts";
			else if (get && s3d_arg_has(r, "acl"))
				op = "GetObjectAcl", act = "s3:GetObjectAcl";
			else if (get && s3d_arg_has(r, "tagging"))
				op = "GetObjectTagging", act = "s3:GetObjectTagging";
		} else if (put) {
			op = "PutObject";
			act = "s3:PutObject";
			if (s3d_arg_has(r, "uploadId") || s3d_arg_has(r, "partNumber"))
				op = s3d_hdr(r, "x-amz-copy-source") ? "UploadPartCopy"
								     : "UploadPart";
			else if (s3d_arg_has(r, "acl"))
				op = "PutObjectAcl", act = "s3:PutObjectAcl";
			else if (s3d_arg_has(r, "tagging"))
				op = "PutObjectTagging", act = "s3:PutObjectTagging";
			else if (s3d_hdr(r, "x-amz-copy-source"))
				op = "CopyObject";
		} else if (del) {
			op = "DeleteObject";
			act = has_version ? "s3:DeleteObjectVersion" : "s3:DeleteObject";
			if (s3d_arg_has(r, "uploadId"))
				op = "AbortMultipartUpload", act = "s3:AbortMultipartUpload";
		} else if (post) {
			op = s3d_arg_has(r, "uploads") ? "CreateMultipartUpload"
						       : "CompleteMultipartUpload";
			act = "s3:PutObject";
		}
	}
	snprintf(r->op, sizeof(r->op), "%s", op);
	r->action = act;
}

/* ---- decision ------------------------------------------------------------------ */

static policy *s3d_bucket_policy(s3d_req *r, const char *bucket)
{
	if (!bucket)
		return NULL;
	char *doc = NULL;
	if (core_bucket_config_get(r->srv->core, bucket, "policy", &doc, NULL) != 0)
		return NULL;
	policy *p = NULL;
	sl_err err = { 0 };
	if (policy_parse(doc, bucket, &p, &err) != 0)
		fprintf(r->srv->o.log, "s3d: stored policy of bucket %s does not parse: %s\n",
			bucket, err.msg);
	free(doc);
	return p;
}

/* 1 if the principal may do action on resource (bucket may be NULL). */
static int s3d_allowed(s3d_req *r, const char *action, const char *bucket, const char *key,
		       int list)
{
	char res[CORE_MAX_KEY + 200];
	if (!strncmp(action, "seglake:", 8))
		snprintf(res, sizeof(res), "arn:seglake:::%s",
			 !strcmp(action, "seglake:GetMetrics") ? "metrics"
			 : !strcmp(action, "seglake:GetStats") ? "stats"
							       : "replication");
	else if (!bucket)
		snprintf(res, sizeof(res), "arn:aws:s3:::*");
	else if (policy_arn(bucket, key, res, sizeof(res)) != 0)
		return 0;
	policy_ctx cx = { 0 };
	cx.action = action;
	cx.resource = res;
	cx.principal = r->anonymous ? NULL : r->auth.access_key;
	cx.source_ip = r->client_ip;
	cx.secure_transport = r->srv->tls != NULL;
	cx.now = time(NULL);
	if (list) {
		const char *p = s3d_arg_get(r, "prefix");
		cx.prefix = p ? p : "";
		cx.delimiter = s3d_arg_get(r, "delimiter");
	}
	if (r->key_root && !r->anonymous)
		return 1;
	policy *idp = NULL, *bp = NULL;
	if (!r->anonymous && r->key_policy && policy_parse(r->key_policy, NULL, &idp, NULL) != 0)
		idp = NULL;
	bp = s3d_bucket_policy(r, bucket);
	int d = policy_decide(0, idp, bp, &cx);
	policy_free(idp);
	policy_free(bp);
	return d == POLICY_ALLOW;
}

static void s3d_access_denied(s3d_req *r)
{
	if (r->anonymous)
		s3d_error(r, "AccessDenied", 403,
			  "Anonymous access is not allowed here (no bucket policy allows it).");
	else
		s3d_error(r, "AccessDenied", 403, NULL);
}

static void s3d_peer_ip(s3d_req *r)
{
	char peer[64] = "";
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;
		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, peer,
				  sizeof(peer));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, peer,
				  sizeof(peer));
	}
	ops_limits_client_ip(r->srv->o.limits, peer, s3d_hdr(r, "X-Forwarded-For"), r->client_ip,
			     sizeof(r->client_ip));
}

static void s3d_event(s3d_req *r, const char *what, const char *detail)
{
	json_t *j = json_pack("{ssssssssss}", "event", what, "request_id", r->id, "remote",
			      r->client_ip, "key_id",
			      r->auth.access_key[0] ? r->auth.access_key : "", "detail",
			      detail ? detail : "");
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (s)
		fprintf(r->srv->o.log, "%s\n", s);
	free(s);
	json_decref(j);
}

int s3d_access_auth(s3d_req *r, int st)
{
	s3d *s = r->srv;
	s3d_access_classify(r);
	if (st != SIGV4_OK && st != SIGV4_ANONYMOUS) {
		const char *code = sigv4_status_code(st);
		ops_metrics_auth_failure(s->o.metrics, code);
		int lim = ops_limits_auth_failed(s->o.limits, r->client_ip, r->auth.access_key,
						 s3d_now_ms());
		if (lim != OPS_LIMIT_OK) {
			ops_metrics_rate_limited(s->o.metrics,
						 lim == OPS_LIMIT_IP ? "auth_ip" : "auth_key");
			s3d_event(r, "rate-limited",
				  lim == OPS_LIMIT_IP ? "too many failed authentications from this "
							"address"
						      : "too many failed authentications for this "
							"key");
			s3d_error(r, "SlowDown", 503, "Please reduce your request rate.");
			return -1;
		}
		s3d_error(r, code, (unsigned)sigv4_status_http(st),
			  r->auth.message[0] ? r->auth.message : sigv4_status_message(st));
		return -1;
	}
	r->anonymous = st == SIGV4_ANONYMOUS;
	if (!r->anonymous && r->auth.form == SIGV4_FORM_HEADER &&
	    ops_limits_replayed(s->o.limits, r->auth.signature, s3d_now_ms(),
				s3d_now_ms() + 15 * 60 * 1000)) {
		ops_metrics_rate_limited(s->o.metrics, "replay");
		s3d_event(r, "replay", "signature already used");
		s3d_error(r, "AccessDenied", 403,
			  "This request was already received (replayed signature).");
		return -1;
	}
	/* /metrics may be open to a scraper network. */
	int open_metrics = !strcmp(r->action, "seglake:GetMetrics") && s->metrics_open &&
			   ops_cidrs_match(s->metrics_open, r->client_ip);
	if (!open_metrics) {
		if (!s3d_allowed(r, r->action, r->bucket,
				 !strncmp(r->action, "seglake:", 8) ? NULL : r->key,
				 !strcmp(r->action, "s3:ListBucket") ||
					 !strcmp(r->action, "s3:ListBucketVersions") ||
					 !strcmp(r->action, "s3:ListBucketMultipartUploads"))) {
			s3d_access_denied(r);
			return -1;
		}
		/* A copy also reads its source. */
		char *sb = NULL, *sk = NULL, *sv = NULL;
		if (r->key && (!strcmp(r->op, "CopyObject") || !strcmp(r->op, "UploadPartCopy")) &&
		    s3d_copy_source(r, &sb, &sk, &sv) == 0 &&
		    !s3d_allowed(r, sv ? "s3:GetObjectVersion" : "s3:GetObject", sb, sk, 0)) {
			free(sb);
			free(sk);
			free(sv);
			s3d_access_denied(r);
			return -1;
		}
		free(sb);
		free(sk);
		free(sv);
	}
	if (!r->anonymous && !r->key_root) {
		if (ops_limits_enter(s->o.limits, r->auth.access_key) != 0) {
			ops_metrics_rate_limited(s->o.metrics, "inflight");
			s3d_event(r, "rate-limited", "too many requests in flight for this key");
			s3d_error(r, "SlowDown", 503, "Please reduce your request rate.");
			return -1;
		}
		r->key_entered = 1;
	}
	return 0;
}

void s3d_access_begin(s3d_req *r)
{
	s3d_peer_ip(r);
	if (!r->metered) {
		r->metered = 1;
		ops_metrics_inflight(r->srv->o.metrics, 1);
	}
}

/* ---- bucket policies ------------------------------------------------------------ */

static int s3d_policy_bucket(s3d_req *r)
{
	core_bucket b;
	sl_err e = { 0 };
	int rc = core_bucket_get(r->srv->core, r->bucket, &b, &e);
	if (rc != 0) {
		s3d_error_sl(r, rc, &e);
		return -1;
	}
	return 0;
}

void s3d_op_get_policy(s3d_req *r)
{
	if (s3d_policy_bucket(r) != 0)
		return;
	char *doc = NULL;
	sl_err e = { 0 };
	int rc = core_bucket_config_get(r->srv->core, r->bucket, "policy", &doc, &e);
	if (rc == SL_ENOKEY) {
		s3d_error(r, "NoSuchBucketPolicy", 404, "The bucket policy does not exist");
		return;
	}
	if (rc != 0) {
		s3d_error_sl(r, rc, &e);
		return;
	}
	size_t n = strlen(doc);
	struct MHD_Response *resp = MHD_create_response_from_buffer(n, doc, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(doc);
		s3d_respond(r, 500, NULL);
		return;
	}
	s3d_hadd(resp, "Content-Type", "application/json");
	r->bytes_out += n;
	s3d_respond(r, 200, resp);
}

static void s3d_put_policy_finish(s3d_req *r)
{
	char *doc = r->mem.p ? strndup(r->mem.p, r->mem.len) : NULL;
	if (!doc || strlen(doc) != r->mem.len) {
		free(doc);
		s3d_error(r, "MalformedPolicy", 400, "Policies must be valid JSON text.");
		return;
	}
	policy *p = NULL;
	sl_err e = { 0 };
	if (policy_parse(doc, r->bucket, &p, &e) != 0) {
		free(doc);
		s3d_error(r, "MalformedPolicy", 400, e.msg);
		return;
	}
	policy_free(p);
	int rc = core_bucket_config_set(r->srv->core, r->bucket, "policy", doc, &e);
	free(doc);
	if (rc != 0) {
		s3d_error_sl(r, rc, &e);
		return;
	}
	s3d_respond_empty(r, 204);
}

void s3d_op_put_policy(s3d_req *r)
{
	if (s3d_policy_bucket(r) != 0)
		return;
	if (s3d_body_setup(r, S3D_BODY_MEM, POLICY_MAX_BYTES) != 0)
		return;
	r->finish = s3d_put_policy_finish;
}

void s3d_op_delete_policy(s3d_req *r)
{
	if (s3d_policy_bucket(r) != 0)
		return;
	sl_err e = { 0 };
	int rc = core_bucket_config_set(r->srv->core, r->bucket, "policy", NULL, &e);
	if (rc != 0 && rc != SL_ENOKEY) {
		s3d_error_sl(r, rc, &e);
		return;
	}
	s3d_respond_empty(r, 204);
}

/* ---- /metrics and /v1/meta/stats --------------------------------------------------- */

static void s3d_text(s3d_req *r, char *body, const char *ctype)
{
	if (!body) {
		s3d_error(r, "InternalError", 500, NULL);
		return;
	}
	size_t n = strlen(body);
	struct MHD_Response *resp = MHD_create_response_from_buffer(n, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		s3d_respond(r, 500, NULL);
		return;
	}
	s3d_hadd(resp, "Content-Type", ctype);
	r->bytes_out += n;
	s3d_respond(r, 200, resp);
}

int s3d_access_route(s3d_req *r)
{
	int metrics = s3d_is_reserved_path(r, "/metrics"), stats = s3d_is_reserved_path(r, "/v1/"
											   "meta/"
											   "stats");
	if (!metrics && !stats)
		return 0;
	if (strcmp(r->method, "GET") != 0) {
		s3d_error(r, "MethodNotAllowed", 405, NULL);
		return 1;
	}
	core *c = r->srv->core;
	if (metrics) {
		s3d_text(r, ops_metrics_render(r->srv->o.metrics, c), "text/plain; version=0.0.4");
		return 1;
	}
	core_stats st;
	memset(&st, 0, sizeof(st));
	sl_err e = { 0 };
	if (core_stats_get(c, &st, &e) != 0) {
		s3d_error_sl(r, e.code, &e);
		return 1;
	}
	ops_metrics_totals t;
	ops_metrics_totals_get(r->srv->o.metrics, &t);
	json_t *j = json_pack(
		"{sssIsIsIsIsIsIsIsIsIsIsbs{sIsIsIsIsIsIsIsIsI}}", "node", core_node_id(c),
		"buckets", (json_int_t)st.buckets, "objects", (json_int_t)st.objects, "versions",
		(json_int_t)st.versions, "bytes", (json_int_t)st.bytes_logical, "chunks",
		(json_int_t)st.chunks, "bytes_stored", (json_int_t)st.bytes_stored, "segments",
		(json_int_t)st.segments, "segment_bytes", (json_int_t)st.segment_bytes,
		"oplog_head", (json_int_t)core_oplog_head(c), "oplog_horizon",
		(json_int_t)core_oplog_horizon(c), "maintenance", core_maintenance(c) != 0,
		"requests", "total", (json_int_t)t.requests, "errors_4xx", (json_int_t)t.errors_4xx,
		"errors_5xx", (json_int_t)t.errors_5xx, "bytes_in", (json_int_t)t.bytes_in,
		"bytes_out", (json_int_t)t.bytes_out, "in_flight", (json_int_t)t.inflight,
		"auth_failures", (json_int_t)t.auth_failures, "rate_limited",
		(json_int_t)t.rate_limited, "started_ms", (json_int_t)t.started_ms);
	char *body = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	s3d_text(r, body, "application/json");
	return 1;
}

/* ---- end of a request ------------------------------------------------------------- */

void s3d_access_done(s3d_req *r, const char *termination, int64_t us)
{
	s3d *s = r->srv;
	if (r->key_entered)
		ops_limits_leave(s->o.limits, r->auth.access_key);
	r->key_entered = 0;
	if (r->metered)
		ops_metrics_inflight(s->o.metrics, -1);
	int status = r->status < 0 ? -r->status : r->status;
	ops_metrics_request(s->o.metrics, r->op[0] ? r->op : "Unknown", status, r->bytes_in,
			    r->bytes_out, (double)us / 1e6);
	if (!s->o.quiet) {
		ops_access a = { 0 };
		a.request_id = r->id;
		a.remote = r->client_ip;
		a.key_id = r->anonymous ? NULL : r->auth.access_key;
		a.op = r->op[0] ? r->op : "-";
		a.method = r->method ? r->method : "-";
		a.bucket = r->bucket;
		a.key = r->key;
		a.query = r->raw_query;
		a.status = r->status;
		a.error = r->errcode[0] ? r->errcode : NULL;
		a.bytes_in = r->bytes_in;
		a.bytes_out = r->bytes_out;
		a.duration_ms = (double)us / 1000.0;
		a.user_agent = s3d_hdr(r, "User-Agent");
		char *line = ops_access_line(&a);
		if (line) {
			/* termination is appended inside the object */
			size_t n = strlen(line);
			if (termination && *termination && n && line[n - 1] == '}')
				fprintf(s->o.log, "%.*s,\"termination\":\"%s\"}\n", (int)(n - 1),
					line, termination);
			else
				fprintf(s->o.log, "%s\n", line);
			free(line);
		}
	}
	free(r->key_policy);
	r->key_policy = NULL;
}
