/*
 * client.c - the outgoing side of replication: one libcurl easy handle per
 * peer (kept alive across requests), every request signed with SigV4 (the
 * body's SHA-256 for bodies held in memory), responses either collected
 * (JSON, bounded) or streamed to a sink (chunk data). Not here: what the
 * requests mean (sync.c) or serving them (server.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>

#include "auth/sigv4.h"
#include "common/hex.h"
#include "repl/repl_int.h"

int64_t repl_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int repl_buf_add(repl_buf *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + len + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	if (data)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
	return 0;
}

void repl_buf_free(repl_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

int repl_client_init(repl_client *cl, const char *url, const repl_creds *cr, sl_err *err)
{
	memset(cl, 0, sizeof(*cl));
	const char *p = url;
	if (strncmp(p, "http://", 7) == 0)
		p += 7;
	else if (strncmp(p, "https://", 8) == 0)
		p += 8;
	else
		return sl_err_set(err, SL_EINVAL,
				  "peer URL '%s' must start with http:// or https://", url);
	size_t hn = strcspn(p, "/");
	if (hn == 0 || hn >= sizeof(cl->host))
		return sl_err_set(err, SL_EINVAL, "peer URL '%s' has no host", url);
	if (p[hn] && strcmp(p + hn, "/") != 0)
		return sl_err_set(err, SL_EINVAL, "peer URL '%s' must not have a path", url);
	memcpy(cl->host, p, hn);
	cl->host[hn] = '\0';
	size_t bn = (size_t)(p - url) + hn;
	if (bn >= sizeof(cl->base))
		return sl_err_set(err, SL_EINVAL, "peer URL too long");
	memcpy(cl->base, url, bn);
	cl->base[bn] = '\0';
	if (!cr || !cr->access_key || !*cr->access_key || !cr->secret_key || !*cr->secret_key)
		return sl_err_set(err, SL_EINVAL,
				  "no credentials for the peer (use --peer-credentials FILE or "
				  "SEGLAKE_PEER_ACCESS_KEY / SEGLAKE_PEER_SECRET_KEY)");
	cl->ak = strdup(cr->access_key);
	cl->sk = strdup(cr->secret_key);
	cl->region = strdup(cr->region && *cr->region ? cr->region : "us-east-1");
	cl->ca_file = cr->ca_file && *cr->ca_file ? strdup(cr->ca_file) : NULL;
	cl->h = curl_easy_init();
	if (!cl->ak || !cl->sk || !cl->region || !cl->h ||
	    (cr->ca_file && *cr->ca_file && !cl->ca_file)) {
		repl_client_clear(cl);
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	return 0;
}

void repl_client_clear(repl_client *cl)
{
	if (cl->h)
		curl_easy_cleanup(cl->h);
	if (cl->sk)
		memset(cl->sk, 0, strlen(cl->sk));
	free(cl->ak);
	free(cl->sk);
	free(cl->region);
	free(cl->ca_file);
	memset(cl, 0, sizeof(*cl));
}

typedef struct repl_xfer {
	repl_client *cl;
	repl_sink_fn sink;
	void *sctx;
	repl_buf *resp;
	int overflow, sink_failed;
	const char *body;
	size_t blen, boff;
} repl_xfer;

static size_t repl_on_write(char *data, size_t sz, size_t nm, void *ctx)
{
	repl_xfer *x = ctx;
	size_t n = sz * nm;
	if (x->cl->cnt)
		x->cl->cnt->wire_in += n;
	if (x->sink) {
		if (x->sink(x->sctx, data, n) != 0) {
			x->sink_failed = 1;
			return 0;
		}
		return n;
	}
	if (x->resp->len + n > REPL_JSON_MAX || repl_buf_add(x->resp, data, n) != 0) {
		x->overflow = 1;
		return 0;
	}
	return n;
}

static size_t repl_on_read(char *buf, size_t sz, size_t nm, void *ctx)
{
	repl_xfer *x = ctx;
	size_t n = sz * nm;
	if (n > x->blen - x->boff)
		n = x->blen - x->boff;
	memcpy(buf, x->body + x->boff, n);
	x->boff += n;
	if (x->cl->cnt)
		x->cl->cnt->wire_out += n;
	return n;
}

static int repl_on_progress(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)dt, (void)dn, (void)ut, (void)un;
	repl_xfer *x = ctx;
	return x->cl->stop && *x->cl->stop ? 1 : 0;
}

int repl_http(repl_client *cl, const char *method, const char *path, const char *query,
	      const void *body, size_t blen, repl_sink_fn sink, void *sctx, repl_buf *resp,
	      long timeout_ms, long *status, sl_err *err)
{
	*status = 0;
	char payload[65];
	uint8_t dg[32];
	SHA256(body ? body : (const void *)"", body ? blen : 0, dg);
	sl_hex(dg, 32, payload);
	char amz_date[17];
	sigv4_format_date(time(NULL), amz_date);
	sigv4_header hs[3] = {
		{ "host", cl->host },
		{ "x-amz-content-sha256", payload },
		{ "x-amz-date", amz_date },
	};
	sigv4_sign_params sp = {
		.method = method,
		.raw_path = path,
		.raw_query = query ? query : "",
		.headers = hs,
		.n_headers = 3,
		.access_key = cl->ak,
		.secret = cl->sk,
		.region = cl->region,
		.amz_date = amz_date,
		.payload_hash = payload,
	};
	char auth[1024];
	if (sigv4_sign(&sp, auth, sizeof(auth), NULL) != 0)
		return sl_err_set(err, SL_EINTERNAL, "cannot sign the request");

	char url[8192], h1[1100], h2[300], h3[100], h4[100];
	int un = snprintf(url, sizeof(url), "%s%s%s%s", cl->base, path, query && *query ? "?" : "",
			  query ? query : "");
	if (un < 0 || (size_t)un >= sizeof(url))
		return sl_err_set(err, SL_EINVAL, "request URL too long");
	snprintf(h1, sizeof(h1), "Authorization: %s", auth);
	snprintf(h2, sizeof(h2), "Host: %s", cl->host);
	snprintf(h3, sizeof(h3), "x-amz-content-sha256: %s", payload);
	snprintf(h4, sizeof(h4), "x-amz-date: %s", amz_date);
	struct curl_slist *hl = NULL, *t;
	const char *hv[] = { h1, h2, h3, h4, "Expect:", "Content-Type: application/octet-stream" };
	for (size_t i = 0; i < sizeof(hv) / sizeof(hv[0]); i++) {
		t = curl_slist_append(hl, hv[i]);
		if (!t) {
			curl_slist_free_all(hl);
			return sl_err_set(err, SL_ENOMEM, "out of memory");
		}
		hl = t;
	}
	repl_xfer x = { .cl = cl,
			.sink = sink,
			.sctx = sctx,
			.resp = resp,
			.body = body,
			.blen = body ? blen : 0 };
	CURL *h = cl->h;
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, repl_on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	/* streamed answers (chunk data) arrive in large reads: a 16 KiB receive
	 * buffer means a recv and a poll per 16 KiB */
	if (sink)
		curl_easy_setopt(h, CURLOPT_BUFFERSIZE, REPL_RECV_BUFFER);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, repl_on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cl->errbuf);
	/* https peers: libcurl verifies the chain and the host name (its
	 * default, never turned off); --peer-ca names a private CA. */
	if (cl->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, cl->ca_file);
	/* A cut link is noticed within seconds (keepalive probes), a stalled
	 * peer after REPL_STALL_SEC without a byte (longer than a long poll). */
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 3L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 2L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)REPL_STALL_SEC);
	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, repl_on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, &x);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x.blen);
	}
	cl->errbuf[0] = '\0';
	CURLcode cc = curl_easy_perform(h);
	curl_slist_free_all(hl);
	if (cc != CURLE_OK) {
		if (x.sink_failed)
			return sl_err_set(err, SL_EIO, "transfer from %s aborted", cl->base);
		if (x.overflow)
			return sl_err_set(err, SL_EIO, "answer from %s is too large", cl->base);
		if (cl->stop && *cl->stop)
			return sl_err_set(err, SL_EIO, "stopped");
		return sl_err_set(err, SL_EIO, "%s%s: %s", cl->base, path,
				  cl->errbuf[0] ? cl->errbuf : curl_easy_strerror(cc));
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	return 0;
}

/* Pulls <Code>/<Message> out of an S3 XML error (auth failures come as XML). */
static void repl_xml_field(const char *doc, const char *tag, char *out, size_t cap)
{
	char open[40], close[40];
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	const char *a = strstr(doc, open), *b;
	out[0] = '\0';
	if (!a || !(b = strstr(a, close)))
		return;
	a += strlen(open);
	size_t n = (size_t)(b - a) < cap - 1 ? (size_t)(b - a) : cap - 1;
	memcpy(out, a, n);
	out[n] = '\0';
}

int repl_call_json(repl_client *cl, const char *method, const char *path, const char *query,
		   const void *body, size_t blen, long timeout_ms, json_t **out, sl_err *err)
{
	*out = NULL;
	repl_buf b = { 0 };
	long status;
	int rc = repl_http(cl, method, path, query, body, blen, NULL, NULL, &b, timeout_ms, &status,
			   err);
	if (rc < 0) {
		repl_buf_free(&b);
		return rc;
	}
	json_t *j = b.p && b.p[0] == '{' ? json_loadb(b.p, b.len, 0, NULL) : NULL;
	if (status < 200 || status > 299) {
		char code[64] = "", msg[200] = "";
		if (j) {
			snprintf(code, sizeof(code), "%s",
				 json_string_value(json_object_get(j, "error")) ?: "");
			snprintf(msg, sizeof(msg), "%s",
				 json_string_value(json_object_get(j, "message")) ?: "");
		} else if (b.p) {
			repl_xml_field(b.p, "Code", code, sizeof(code));
			repl_xml_field(b.p, "Message", msg, sizeof(msg));
		}
		json_decref(j);
		repl_buf_free(&b);
		int sc = status == 410 ? SL_ENOTSUP : status == 403 ? SL_EINVAL : SL_EIO;
		return sl_err_set(err, sc, "%s%s: HTTP %ld %s%s%s", cl->base, path, status, code,
				  msg[0] ? ": " : "", msg);
	}
	repl_buf_free(&b);
	if (!j)
		return sl_err_set(err, SL_EIO, "%s%s: answer is not JSON", cl->base, path);
	*out = j;
	return 0;
}

static char *repl_trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

int repl_creds_load(const char *file, char **ak, char **sk, sl_err *err)
{
	*ak = *sk = NULL;
	if (file && *file) {
		FILE *f = fopen(file, "r");
		if (!f)
			return sl_err_set(err, SL_EINVAL, "cannot read %s: %s", file,
					  strerror(errno));
		char line[512];
		while (fgets(line, sizeof(line), f)) {
			char *s = repl_trim(line);
			char *eq = strchr(s, '=');
			if (!*s || *s == '#' || !eq)
				continue;
			*eq = '\0';
			char *name = repl_trim(s), *val = repl_trim(eq + 1);
			char **dst = strcmp(name, "access_key") == 0   ? ak
				     : strcmp(name, "secret_key") == 0 ? sk
								       : NULL;
			if (dst) {
				free(*dst);
				*dst = strdup(val);
			}
		}
		fclose(f);
		if (!*ak || !*sk || !**ak || !**sk) {
			free(*ak);
			free(*sk);
			*ak = *sk = NULL;
			return sl_err_set(err, SL_EINVAL, "%s lacks access_key or secret_key",
					  file);
		}
		return 0;
	}
	const char *a = getenv("SEGLAKE_PEER_ACCESS_KEY"), *s = getenv("SEGLAKE_PEER_SECRET_KEY");
	if (!a || !*a || !s || !*s)
		return sl_err_set(err, SL_EINVAL,
				  "no peer credentials: use --peer-credentials FILE or set "
				  "SEGLAKE_PEER_ACCESS_KEY and SEGLAKE_PEER_SECRET_KEY");
	*ak = strdup(a);
	*sk = strdup(s);
	if (!*ak || !*sk) {
		free(*ak);
		free(*sk);
		*ak = *sk = NULL;
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	return 0;
}
