/*
 * server.c - the libmicrohttpd glue of the S3 daemon: daemon start/stop,
 * the per-request state (raw target, headers, query, bucket/key from path-
 * or virtual-hosted-style), limits, SigV4 verification before any body is
 * read, the body hand-off to body.c, the common answer headers and the one
 * log line per request. Not here: what any S3 operation does (router.c and
 * the op files), SigV4 itself (auth/).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "common/dlist.h"
#include "ops/limits.h"
#include "s3d/s3d_int.h"

/* ---- small request accessors --------------------------------------------- */

const char *s3d_arg_get(const s3d_req *r, const char *name)
{
	for (size_t i = 0; i < r->nargs; i++)
		if (strcmp(r->args[i].name, name) == 0)
			return r->args[i].value;
	return NULL;
}

int s3d_arg_has(const s3d_req *r, const char *name)
{
	return s3d_arg_get(r, name) != NULL;
}

const char *s3d_hdr(const s3d_req *r, const char *name)
{
	for (size_t i = 0; i < r->nhdrs; i++)
		if (strcasecmp(r->hdrs[i].name, name) == 0)
			return r->hdrs[i].value;
	return NULL;
}

static int64_t s3d_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- answers -------------------------------------------------------------- */

void s3d_hadd(struct MHD_Response *resp, const char *name, const char *value)
{
	if (value)
		MHD_add_response_header(resp, name, value);
}

void s3d_req_header(s3d_req *r, const char *name, const char *value)
{
	if (!value || r->nxh >= (int)(sizeof(r->xh_name) / sizeof(r->xh_name[0])))
		return;
	r->xh_name[r->nxh] = strdup(name);
	r->xh_value[r->nxh] = strdup(value);
	if (!r->xh_name[r->nxh] || !r->xh_value[r->nxh]) {
		free(r->xh_name[r->nxh]);
		free(r->xh_value[r->nxh]);
		return;
	}
	r->nxh++;
}

void s3d_respond(s3d_req *r, unsigned status, struct MHD_Response *resp)
{
	if (!resp) {
		/* Out of memory building the answer: the connection is dropped. */
		r->responded = 1;
		r->status = 500;
		return;
	}
	char id2[96];
	snprintf(id2, sizeof(id2), "%s/%s", r->srv->owner_id, r->id);
	s3d_hadd(resp, "x-amz-request-id", r->id);
	s3d_hadd(resp, "x-amz-id-2", id2);
	s3d_hadd(resp, "Server", "Seglake");
	for (int i = 0; i < r->nxh; i++)
		s3d_hadd(resp, r->xh_name[i], r->xh_value[i]);
	if (r->bucket && s3d_hdr(r, "Origin") && strcmp(r->method, "OPTIONS") != 0)
		s3d_cors_headers(r, resp);
	if (r->responded) {
		/* A second answer is a bug in a handler; keep the first. */
		MHD_destroy_response(resp);
		return;
	}
	r->responded = 1;
	r->status = (int)status;
	if (r->in_body) {
		/* MHD accepts an answer only before or after the body: keep it. */
		r->pending = resp;
		r->pending_status = status;
		return;
	}
	if (MHD_queue_response(r->conn, status, resp) != MHD_YES)
		r->status = -(int)status;
	MHD_destroy_response(resp);
}

void s3d_respond_empty(s3d_req *r, unsigned status)
{
	s3d_respond(r, status,
		    MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT));
}

struct MHD_Response *s3d_xml_response(s3d_req *r, s3d_buf *b)
{
	if (b->oom) {
		s3d_buf_free(b);
		return NULL;
	}
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		b->len, b->p ? b->p : (void *)"",
		b->p ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!resp)
		free(b->p);
	r->bytes_out += b->len;
	b->p = NULL;
	b->len = b->cap = 0;
	if (resp)
		s3d_hadd(resp, "Content-Type", "application/xml");
	return resp;
}

void s3d_respond_xml(s3d_req *r, unsigned status, s3d_buf *b)
{
	s3d_respond(r, status, s3d_xml_response(r, b));
}

void s3d_buf_owner(s3d_req *r, s3d_buf *b, const char *elem)
{
	s3d_buf_printf(b, "<%s><ID>%s</ID><DisplayName>seglake</DisplayName></%s>", elem,
		       r->srv->owner_id, elem);
}

/* ---- request parsing ----------------------------------------------------- */

typedef struct hdr_collect {
	s3d_req *r;
	size_t cap;
	size_t bytes;
	int oom;
} hdr_collect;

static enum MHD_Result s3d_hdr_iter(void *cls, enum MHD_ValueKind kind, const char *key,
				    const char *value)
{
	(void)kind;
	hdr_collect *hc = cls;
	s3d_req *r = hc->r;
	if (r->nhdrs == hc->cap) {
		size_t cap = hc->cap ? hc->cap * 2 : 32;
		sigv4_header *h = realloc(r->hdrs, cap * sizeof(*h));
		if (!h) {
			hc->oom = 1;
			return MHD_NO;
		}
		r->hdrs = h;
		hc->cap = cap;
	}
	r->hdrs[r->nhdrs].name = key;
	r->hdrs[r->nhdrs].value = value ? value : "";
	r->nhdrs++;
	hc->bytes += strlen(key) + (value ? strlen(value) : 0) + 4;
	return MHD_YES;
}

/* Splits the raw query into decoded name/value pairs, in order. */
static int s3d_parse_query(s3d_req *r)
{
	const char *q = r->raw_query;
	size_t cap = 0;
	while (*q) {
		const char *amp = strchr(q, '&');
		size_t n = amp ? (size_t)(amp - q) : strlen(q);
		if (n > 0) {
			const char *eq = memchr(q, '=', n);
			size_t kn = eq ? (size_t)(eq - q) : n;
			if (r->nargs == cap) {
				cap = cap ? cap * 2 : 8;
				if (cap > 256)
					return -1;
				s3d_arg *a = realloc(r->args, cap * sizeof(*a));
				if (!a)
					return -1;
				r->args = a;
			}
			s3d_arg *a = &r->args[r->nargs];
			a->name = s3d_url_decode(q, kn, 1);
			a->value = eq ? s3d_url_decode(eq + 1, n - kn - 1, 1) : strdup("");
			a->has_value = eq != NULL;
			if (!a->name || !a->value) {
				free(a->name);
				free(a->value);
				return -1;
			}
			r->nargs++;
		}
		if (!amp)
			break;
		q = amp + 1;
	}
	return 0;
}

/* Bucket from a virtual-hosted Host header ("bucket.domain[:port]"), or NULL. */
static char *s3d_vhost_bucket(s3d_req *r)
{
	const char *host = s3d_hdr(r, "Host");
	if (!host || !*host || host[0] == '[')
		return NULL;
	char h[256];
	size_t n = strcspn(host, ":");
	if (n >= sizeof(h))
		return NULL;
	memcpy(h, host, n);
	h[n] = '\0';
	for (char *p = h; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	const char *d = r->srv->domains;
	while (*d) {
		size_t dn = strcspn(d, ",");
		if (dn > 0 && n > dn + 1 && h[n - dn - 1] == '.' &&
		    strncmp(h + n - dn, d, dn) == 0) {
			return strndup(h, n - dn - 1);
		}
		d += dn;
		if (*d == ',')
			d++;
	}
	return NULL;
}

/* Fills bucket/key from the path (and Host). Returns 0, or answers and -1. */
static int s3d_parse_target(s3d_req *r)
{
	const char *path = r->raw_path;
	char *vb = s3d_vhost_bucket(r);
	if (vb) {
		r->bucket = vb;
		const char *k = path + 1;
		if (*k) {
			r->key = s3d_url_decode(k, strlen(k), 0);
			if (!r->key) {
				s3d_error(r, "InvalidURI", 400,
					  "Couldn't parse the specified URI.");
				return -1;
			}
		}
	} else {
		const char *b = path + 1;
		size_t bn = strcspn(b, "/");
		if (bn > 0) {
			r->bucket = s3d_url_decode(b, bn, 0);
			if (!r->bucket) {
				s3d_error(r, "InvalidURI", 400,
					  "Couldn't parse the specified URI.");
				return -1;
			}
			const char *k = b + bn;
			if (*k == '/' && k[1]) {
				r->key = s3d_url_decode(k + 1, strlen(k + 1), 0);
				if (!r->key) {
					s3d_error(r, "InvalidURI", 400,
						  "Couldn't parse the specified URI.");
					return -1;
				}
			}
		}
	}
	if (r->key && strlen(r->key) > CORE_MAX_KEY) {
		s3d_error(r, "KeyTooLongError", 400, NULL);
		return -1;
	}
	/* Names are UTF-8 (the core journals them as JSON); refuse others
	 * before any body byte, and do not echo them into the XML error. */
	if (!s3d_utf8_valid(r->bucket) || !s3d_utf8_valid(r->key)) {
		free(r->bucket);
		free(r->key);
		r->bucket = r->key = NULL;
		s3d_error(r, "InvalidURI", 400, "Bucket names and keys must be valid UTF-8.");
		return -1;
	}
	return 0;
}

/* Paths that are not S3: replication (/v1/...) and /metrics. Their owners
 * plug in here; until then they get a clean S3-style 404. Returns 1 if the
 * request was answered. */
static int s3d_route_reserved(s3d_req *r)
{
	char *vb = s3d_vhost_bucket(r);
	int vhost = vb != NULL;
	free(vb);
	if (vhost)
		return 0;
	int reserved = strncmp(r->raw_path, "/v1/", 4) == 0 || strcmp(r->raw_path, "/v1") == 0 ||
		       (strcmp(r->raw_path, "/metrics") == 0 && strcmp(r->method, "GET") == 0 &&
			r->raw_query[0] == '\0');
	if (!reserved)
		return 0;
	if (r->srv->o.repl_route && strncmp(r->raw_path, "/v1/repl/", 9) == 0)
		return 0; /* authenticated below, then routed to repl/ (router.c) */
	if (strcmp(r->raw_path, "/metrics") == 0 || strcmp(r->raw_path, "/v1/meta/stats") == 0)
		return 0; /* authorised below, answered by access.c */
	s3d_error(r, "NoSuchResource", 404, "This endpoint is reserved and not enabled.");
	return 1;
}

/* First call for a request: everything up to routing. */
static void s3d_req_begin(s3d_req *r, const char *method)
{
	r->method = method;
	hdr_collect hc = { .r = r };
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, s3d_hdr_iter, &hc);
	if (hc.oom) {
		s3d_error(r, "InternalError", 500, NULL);
		return;
	}
	s3d_access_begin(r);
	/* The target: path and query, both still encoded. */
	const char *uri = r->uri ? r->uri : "/";
	if (strlen(uri) > r->srv->o.max_url_bytes) {
		s3d_error(r, "InvalidURI", 400, "The request target is too long.");
		return;
	}
	if (uri[0] != '/') {
		s3d_error(r, "InvalidURI", 400, "Couldn't parse the specified URI.");
		return;
	}
	const char *qm = strchr(uri, '?');
	r->raw_path = qm ? strndup(uri, (size_t)(qm - uri)) : strdup(uri);
	r->raw_query = strdup(qm ? qm + 1 : "");
	if (!r->raw_path || !r->raw_query) {
		s3d_error(r, "InternalError", 500, NULL);
		return;
	}
	if (s3d_parse_query(r) != 0) {
		s3d_error(r, "InvalidArgument", 400, "The query string could not be parsed.");
		return;
	}
	if (hc.bytes > r->srv->o.max_header_bytes) {
		s3d_error(r, "RequestHeaderSectionTooLarge", 400, NULL);
		return;
	}
	const char *cl = s3d_hdr(r, "Content-Length");
	r->content_length = -1;
	if (cl) {
		uint64_t v;
		if (s3d_parse_u64(cl, &v) != 0 || v > INT64_MAX) {
			s3d_error(r, "InvalidArgument", 400, "Bad Content-Length.");
			return;
		}
		r->content_length = (int64_t)v;
	}
	if (s3d_route_reserved(r))
		return;
	if (s3d_parse_target(r) != 0)
		return;

	/* CORS preflight is answered from the bucket's rules, unauthenticated. */
	if (strcmp(method, "OPTIONS") == 0) {
		s3d_op_cors_preflight(r);
		return;
	}

	sigv4_config cfg = {
		.lookup = s3d_access_lookup,
		.lookup_ctx = r,
		.region = r->srv->region,
		.max_skew_sec = 900,
	};
	sigv4_request sr = {
		.method = method,
		.raw_path = r->raw_path,
		.raw_query = r->raw_query,
		.headers = r->hdrs,
		.n_headers = r->nhdrs,
		.now = time(NULL),
	};
	int st = sigv4_verify(&cfg, &sr, &r->auth);
	if (s3d_access_auth(r, st) != 0) /* limits, anonymous access, policies */
		return;
	s3d_route(r);
}

/* ---- connection watch: header and body deadlines ---------------------------
 *
 * libmicrohttpd only has an inactivity timeout, so a client that trickles a
 * byte every few seconds would hold a connection (and its thread) forever.
 * Every connection therefore has an entry here (added on NOTIFY_STARTED,
 * removed on NOTIFY_CLOSED, which MHD calls before it closes the socket),
 * and a watchdog thread checks them four times a second:
 *
 *   headers  the request line and header section must be complete within
 *            header_timeout_sec of the connection opening, or of the end of
 *            the previous request on a keep-alive connection (so an idle
 *            keep-alive connection is closed after that long too);
 *   body     while the daemon waits for a request body, every
 *            body_timeout_sec spent waiting must bring at least
 *            body_min_rate * body_timeout_sec bytes (at least one). Time our
 *            handler spends storing the body does not count.
 *
 * A late header section is cut (shutdown of the socket: MHD then closes it;
 * there is no request to answer). A body that falls short gets 400
 * RequestTimeout written directly on the socket when nothing else can be
 * writing there (plain HTTP, no answer queued, MHD waiting for body bytes),
 * and the socket is shut down either way; MHD then ends the request as a
 * client abort, so the upload's writer is aborted in s3d_req_free and
 * nothing of it becomes visible. An entry marked cut makes the access
 * handler refuse any further call, so no answer races the watchdog's.
 */

enum { S3D_PH_HEADERS, S3D_PH_BODY, S3D_PH_RESP };
enum { S3D_CUT_NONE, S3D_CUT_HEADERS, S3D_CUT_BODY };

typedef struct s3d_conn {
	struct s3d_conn *prev, *next;
	struct MHD_Connection *conn;
	int fd;
	char ip[64];
	int phase;		   /* S3D_PH_* */
	int served;		   /* requests completed on this connection */
	int line_seen;		   /* the current request's request line has arrived */
	int busy;		   /* the connection thread is inside our access handler */
	int answerable;		   /* body phase with no answer decided: a 400 may be written */
	int cut;		   /* S3D_CUT_*: shut down by the watchdog */
	int64_t t_phase;	   /* monotonic us: when the phase began */
	int64_t t_exit;		   /* when the handler last returned */
	int64_t waited;		   /* body phase: us spent waiting on the client up to t_exit */
	int64_t win_wait;	   /* waited when the current window began */
	uint64_t bytes, win_bytes; /* body bytes so far / when the window began */
	char req_id[20];
} s3d_conn;

struct s3d_watch {
	pthread_mutex_t lock; /* protects everything here and in the entries */
	pthread_cond_t cond;
	s3d_conn *head;
	pthread_t thread;
	int running, stop;
};

/* Writes the 400 RequestTimeout answer on a connection whose body is late.
 * Called with the watch lock held; never blocks (the socket buffer is empty:
 * MHD is waiting for body bytes and has nothing queued). */
static void s3d_watch_answer_timeout(s3d *s, s3d_conn *e)
{
	char body[512], msg[1024];
	int bn = snprintf(body, sizeof(body),
			  S3D_XML_HEAD "<Error><Code>RequestTimeout</Code><Message>Your socket "
				       "connection to the server was not read from or written to "
				       "within the timeout period. Idle connections will be closed."
				       "</Message><RequestId>%s</RequestId><HostId>%s</HostId></"
				       "Error>",
			  e->req_id, s->owner_id);
	if (bn < 0 || bn >= (int)sizeof(body))
		return;
	int mn = snprintf(msg, sizeof(msg),
			  "HTTP/1.1 400 Bad Request\r\nContent-Type: application/xml\r\n"
			  "Content-Length: %d\r\nConnection: close\r\nx-amz-request-id: %s\r\n"
			  "Server: Seglake\r\n\r\n%s",
			  bn, e->req_id, body);
	if (mn < 0 || mn >= (int)sizeof(msg))
		return;
	ssize_t w = send(e->fd, msg, (size_t)mn, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)w; /* best effort: the socket is shut down next anyway */
}

static void s3d_watch_check(s3d *s, int64_t now)
{
	struct s3d_watch *wt = s->watch;
	const int64_t hdr_us = (int64_t)s->o.header_timeout_sec * 1000000;
	const int64_t body_us = (int64_t)s->o.body_timeout_sec * 1000000;
	uint64_t need = (uint64_t)s->o.body_min_rate * s->o.body_timeout_sec; /* both < 2^32 */
	if (need == 0)
		need = 1;
	for (s3d_conn *e = wt->head; e; e = e->next) {
		if (e->cut)
			continue;
		if (e->phase == S3D_PH_HEADERS && now - e->t_phase >= hdr_us) {
			e->cut = S3D_CUT_HEADERS;
			/* An idle keep-alive connection closes quietly, like MHD's
			 * idle timeout; a started or first request is worth a line,
			 * written before the shutdown so that whoever sees the close
			 * finds the reason already logged. */
			if (!s->o.quiet && (e->line_seen || e->served == 0))
				fprintf(s->o.log,
					"s3d: closed connection from %s: request headers not "
					"complete within %us\n",
					e->ip, s->o.header_timeout_sec);
			shutdown(e->fd, SHUT_RDWR);
		} else if (e->phase == S3D_PH_BODY && !e->busy) {
			int64_t waited = e->waited + (now - e->t_exit);
			if (waited - e->win_wait < body_us)
				continue;
			if (e->bytes - e->win_bytes >= need) {
				e->win_wait = waited; /* enough arrived: a new window */
				e->win_bytes = e->bytes;
				continue;
			}
			e->cut = S3D_CUT_BODY;
			int answer = e->answerable && !s->tls;
			if (!s->o.quiet) /* before the answer and the shutdown, as above */
				fprintf(s->o.log,
					"s3d: %s: request body from %s too slow (%llu bytes in the "
					"last %us), %s\n",
					e->req_id, e->ip,
					(unsigned long long)(e->bytes - e->win_bytes),
					s->o.body_timeout_sec,
					answer ? "answered RequestTimeout" : "connection closed");
			if (answer)
				s3d_watch_answer_timeout(s, e);
			shutdown(e->fd, SHUT_RDWR);
		}
	}
}

static void *s3d_watch_main(void *arg)
{
	s3d *s = arg;
	struct s3d_watch *wt = s->watch;
	pthread_mutex_lock(&wt->lock);
	while (!wt->stop) {
		struct timespec dl;
		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_nsec += 250 * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&wt->cond, &wt->lock, &dl);
		if (!wt->stop)
			s3d_watch_check(s, s3d_mono_us());
	}
	pthread_mutex_unlock(&wt->lock);
	return NULL;
}

static int s3d_watch_new(s3d *s, sl_err *err)
{
	struct s3d_watch *wt = calloc(1, sizeof(*wt));
	if (!wt)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&wt->lock, NULL);
	pthread_cond_init(&wt->cond, &ca);
	pthread_condattr_destroy(&ca);
	s->watch = wt;
	int rc = pthread_create(&wt->thread, NULL, s3d_watch_main, s);
	if (rc != 0)
		return sl_err_set(err, SL_EIO, "cannot start the connection watchdog: %s",
				  strerror(rc));
	wt->running = 1;
	return 0;
}

/* After MHD stopped (every connection is gone): stops the thread, frees. */
static void s3d_watch_free(s3d *s)
{
	struct s3d_watch *wt = s->watch;
	if (!wt)
		return;
	if (wt->running) {
		pthread_mutex_lock(&wt->lock);
		wt->stop = 1;
		pthread_cond_signal(&wt->cond);
		pthread_mutex_unlock(&wt->lock);
		pthread_join(wt->thread, NULL);
	}
	while (wt->head) {
		s3d_conn *e = wt->head;
		wt->head = e->next;
		free(e);
	}
	pthread_cond_destroy(&wt->cond);
	pthread_mutex_destroy(&wt->lock);
	free(wt);
	s->watch = NULL;
}

static void s3d_watch_add(s3d *s, struct MHD_Connection *c)
{
	s3d_conn *e = calloc(1, sizeof(*e));
	if (!e)
		return; /* unwatched: only the idle timeout applies */
	const union MHD_ConnectionInfo *fi =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	const union MHD_ConnectionInfo *ai =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!fi) {
		free(e);
		return;
	}
	e->conn = c;
	e->fd = fi->connect_fd;
	snprintf(e->ip, sizeof(e->ip), "?");
	if (ai && ai->client_addr) {
		const struct sockaddr *sa = ai->client_addr;
		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET,
				  &((const struct sockaddr_in *)(const void *)sa)->sin_addr, e->ip,
				  sizeof(e->ip));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6,
				  &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
				  e->ip, sizeof(e->ip));
	}
	e->phase = S3D_PH_HEADERS;
	e->t_phase = s3d_mono_us();
	struct s3d_watch *wt = s->watch;
	pthread_mutex_lock(&wt->lock);
	SL_DLIST_PUSH(wt->head, e, prev, next);
	pthread_mutex_unlock(&wt->lock);
}

static s3d_conn *s3d_watch_find_locked(struct s3d_watch *wt, struct MHD_Connection *c)
{
	for (s3d_conn *e = wt->head; e; e = e->next)
		if (e->conn == c)
			return e;
	return NULL;
}

static void s3d_watch_remove(s3d *s, struct MHD_Connection *c)
{
	struct s3d_watch *wt = s->watch;
	pthread_mutex_lock(&wt->lock);
	s3d_conn *e = s3d_watch_find_locked(wt, c);
	if (e)
		SL_DLIST_UNLINK(wt->head, e, prev, next);
	pthread_mutex_unlock(&wt->lock);
	free(e);
}

/* The request line of a new request arrived (URI callback). */
static void s3d_watch_line(s3d *s, s3d_req *r)
{
	struct s3d_watch *wt = s->watch;
	pthread_mutex_lock(&wt->lock);
	r->cn = s3d_watch_find_locked(wt, r->conn);
	if (r->cn)
		r->cn->line_seen = 1;
	pthread_mutex_unlock(&wt->lock);
}

/* Entering the access handler with n body bytes. -1: the watchdog cut this
 * connection; the handler must refuse (MHD_NO) without answering. */
static int s3d_watch_enter(s3d_req *r, size_t n)
{
	s3d_conn *e = r->cn;
	if (!e)
		return 0;
	struct s3d_watch *wt = r->srv->watch;
	int rc = 0;
	pthread_mutex_lock(&wt->lock);
	if (e->cut) {
		rc = -1;
	} else {
		e->busy = 1;
		if (e->phase == S3D_PH_BODY) {
			e->waited += s3d_mono_us() - e->t_exit;
			e->bytes += n;
		}
	}
	pthread_mutex_unlock(&wt->lock);
	return rc;
}

/* Leaving the access handler. first: the call that followed the header
 * section (body: the request has one); final: the call after the body. */
static void s3d_watch_leave(s3d_req *r, int first, int body, int final)
{
	s3d_conn *e = r->cn;
	if (!e)
		return;
	struct s3d_watch *wt = r->srv->watch;
	int64_t now = s3d_mono_us();
	pthread_mutex_lock(&wt->lock);
	e->busy = 0;
	e->t_exit = now;
	if (first) {
		e->phase = body ? S3D_PH_BODY : S3D_PH_RESP;
		e->t_phase = now;
		e->waited = e->win_wait = 0;
		e->bytes = e->win_bytes = 0;
		memcpy(e->req_id, r->id, sizeof(e->req_id));
	} else if (final) {
		e->phase = S3D_PH_RESP;
	}
	e->answerable = !r->responded;
	pthread_mutex_unlock(&wt->lock);
}

/* The request ended: how the watchdog cut it (S3D_CUT_*), and the
 * connection's header clock restarts for a next request. */
static int s3d_watch_done(s3d_req *r)
{
	s3d_conn *e = r->cn;
	if (!e)
		return S3D_CUT_NONE;
	struct s3d_watch *wt = r->srv->watch;
	pthread_mutex_lock(&wt->lock);
	int cut = e->cut;
	e->phase = S3D_PH_HEADERS;
	e->t_phase = s3d_mono_us();
	e->line_seen = 0;
	e->busy = 0;
	e->served++;
	pthread_mutex_unlock(&wt->lock);
	r->cn = NULL;
	return cut;
}

/* ---- MHD callbacks -------------------------------------------------------- */

static void *s3d_on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	s3d *s = cls;
	s3d_req *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->srv = s;
	r->conn = conn;
	r->uri = strdup(uri ? uri : "/");
	r->t0_us = s3d_mono_us();
	r->content_length = -1;
	pthread_mutex_lock(&s->lock);
	uint64_t seq = ++s->seq;
	s->inflight++;
	pthread_mutex_unlock(&s->lock);
	r->counted = 1;
	snprintf(r->id, sizeof(r->id), "%08X%08X", s->boot, (unsigned)seq);
	s3d_watch_line(s, r);
	return r;
}

/* Does the request announce a body? */
static int s3d_conn_has_body(struct MHD_Connection *conn)
{
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
	const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
	return te || (cl && strcmp(cl, "0") != 0);
}

static enum MHD_Result s3d_on_access_req(s3d_req *r, struct MHD_Connection *conn,
					 const char *method, const char *upload_data,
					 size_t *upload_data_size)
{
	if (!r->started) {
		r->started = 1;
		/* An answer queued before MHD has seen the (empty) body makes it
		 * close the connection; without a body, hold it for the final call
		 * so keep-alive works. With a body, answering early (errors before
		 * Expect: 100-continue) is what we want. */
		r->in_body = !s3d_conn_has_body(conn);
		s3d_req_begin(r, method);
		r->in_body = 0;
		return MHD_YES;
	}
	if (*upload_data_size) {
		r->bytes_in += *upload_data_size;
		if (!r->responded) {
			r->in_body = 1;
			s3d_body_feed(r, upload_data, *upload_data_size);
			r->in_body = 0;
			if (r->responded && r->w) {
				core_put_abort(r->w); /* nothing of it becomes visible */
				r->w = NULL;
			}
		} else {
			r->discarded += *upload_data_size;
			if (r->discarded > S3D_MAX_DISCARD)
				return MHD_NO;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->pending) {
		if (MHD_queue_response(conn, r->pending_status, r->pending) != MHD_YES)
			r->status = -r->status;
		MHD_destroy_response(r->pending);
		r->pending = NULL;
		return MHD_YES;
	}
	if (!r->responded) {
		if (s3d_body_end(r) == 0 && !r->responded) {
			if (r->finish)
				r->finish(r);
			else
				s3d_error(r, "InternalError", 500, "no handler");
		}
	}
	return MHD_YES;
}

static enum MHD_Result s3d_on_access(void *cls, struct MHD_Connection *conn, const char *url,
				     const char *method, const char *version,
				     const char *upload_data, size_t *upload_data_size,
				     void **con_cls)
{
	(void)version;
	s3d_req *r = *con_cls;
	if (!r) {
		r = s3d_on_uri(cls, url, conn);
		if (!r)
			return MHD_NO;
		*con_cls = r;
	}
	r->conn = conn;
	int first = !r->started;
	size_t n = *upload_data_size;
	if (s3d_watch_enter(r, n) != 0)
		return MHD_NO; /* cut by the watchdog: the request ends as aborted */
	enum MHD_Result res = s3d_on_access_req(r, conn, method, upload_data, upload_data_size);
	s3d_watch_leave(r, first, first && s3d_conn_has_body(conn), !first && n == 0);
	return res;
}

static void s3d_req_free(s3d_req *r)
{
	if (r->pending)
		MHD_destroy_response(r->pending);
	s3d_body_free(r);
	sigv4_auth_clear(&r->auth);
	for (size_t i = 0; i < r->nargs; i++) {
		free(r->args[i].name);
		free(r->args[i].value);
	}
	free(r->args);
	free(r->hdrs);
	free(r->uri);
	free(r->raw_path);
	free(r->raw_query);
	free(r->bucket);
	free(r->key);
	free(r->meta);
	free(r->cond_match);
	free(r->cond_none);
	free(r->upload_id);
	for (int i = 0; i < r->nxh; i++) {
		free(r->xh_name[i]);
		free(r->xh_value[i]);
	}
	free(r);
}

static void s3d_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			     enum MHD_RequestTerminationCode toe)
{
	(void)conn;
	s3d *s = cls;
	s3d_req *r = *con_cls;
	*con_cls = NULL;
	if (!r)
		return;
	{
		/* One JSON access log line (unless quiet) and the request metrics. */
		const char *how = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK	  ? ""
				  : toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT	  ? "client-abort"
				  : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout"
				  : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "shutdown"
				  : toe == MHD_REQUEST_TERMINATED_READ_ERROR	  ? "read-error"
										  : "error";
		int cut = s3d_watch_done(r);
		if (cut == S3D_CUT_HEADERS) {
			how = "header-timeout";
		} else if (cut == S3D_CUT_BODY) {
			how = "body-timeout";
			if (!r->responded) {
				r->status = 400;
				snprintf(r->errcode, sizeof(r->errcode), "RequestTimeout");
			}
		}
		s3d_access_done(r, how, s3d_mono_us() - r->t0_us);
	}
	int counted = r->counted;
	s3d_req_free(r);
	if (counted) {
		pthread_mutex_lock(&s->lock);
		s->inflight--;
		pthread_cond_broadcast(&s->idle);
		pthread_mutex_unlock(&s->lock);
	}
}

static void s3d_mhd_log(void *cls, const char *fmt, va_list ap)
{
	s3d *s = cls;
	if (s->o.quiet)
		return;
	fputs("s3d: mhd: ", s->o.log);
	vfprintf(s->o.log, fmt, ap);
}

static size_t s3d_unescape_none(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

/* Every connection's socket context is the s3d (tls.c finds it there). */
static void s3d_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			      enum MHD_ConnectionNotificationCode toe)
{
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		*socket_context = cls;
		s3d_watch_add(cls, c);
	} else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		s3d_watch_remove(cls, c); /* before MHD closes the socket */
	}
}

int s3d_tls_reload_files(s3d *s, sl_err *err)
{
	if (!s->tls)
		return sl_err_set(err, SL_EINVAL, "the S3 listener does not serve TLS");
	return s3d_tls_reload(s->tls, err);
}

/* ---- lifecycle ------------------------------------------------------------ */

static int s3d_parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len,
			    sl_err *err)
{
	char host[256];
	const char *port;
	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');
		if (!close || close[1] != ':' || (size_t)(close - listen - 1) >= sizeof(host))
			return sl_err_set(err, SL_EINVAL, "bad listen address '%s'", listen);
		memcpy(host, listen + 1, (size_t)(close - listen - 1));
		host[close - listen - 1] = '\0';
		port = close + 2;
	} else {
		const char *colon = strrchr(listen, ':');
		if (!colon) {
			snprintf(host, sizeof(host), "127.0.0.1");
			port = listen;
		} else {
			if ((size_t)(colon - listen) >= sizeof(host))
				return sl_err_set(err, SL_EINVAL, "bad listen address '%s'",
						  listen);
			memcpy(host, listen, (size_t)(colon - listen));
			host[colon - listen] = '\0';
			if (!host[0])
				snprintf(host, sizeof(host), "0.0.0.0");
			port = colon + 1;
		}
	}
	uint64_t pn;
	if (s3d_parse_u64(port, &pn) != 0 || pn > 65535)
		return sl_err_set(err, SL_EINVAL, "bad port in listen address '%s'", listen);
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0 || !ai)
		return sl_err_set(err, SL_EINVAL, "cannot resolve listen host '%s': %s", host,
				  gai_strerror(rc));
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static char *s3d_dup(const char *s, const char *def)
{
	return strdup(s && *s ? s : def);
}

int s3d_start(core *c, const s3d_opts *o, s3d **out, sl_err *err)
{
	*out = NULL;
	if (!o->access_key || !*o->access_key || !o->secret_key || !*o->secret_key)
		return sl_err_set(err, SL_EINVAL, "an access key and secret key are required");
	if (strlen(o->secret_key) > SIGV4_MAX_SECRET || strlen(o->access_key) > SIGV4_MAX_KEY_ID)
		return sl_err_set(err, SL_EINVAL, "access key or secret too long");
	s3d *s = calloc(1, sizeof(*s));
	if (!s)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	s->core = c;
	s->o = *o;
	s->listen = s3d_dup(o->listen, "127.0.0.1:9000");
	s->region = s3d_dup(o->region, "us-east-1");
	s->access_key = s3d_dup(o->access_key, "");
	s->secret_key = s3d_dup(o->secret_key, "");
	s->domains = s3d_dup(o->domains, "localhost");
	if (!s->o.max_object_size)
		s->o.max_object_size = 5ull << 30;
	if (!s->o.min_part_size)
		s->o.min_part_size = 5ull << 20;
	if (!s->o.max_header_bytes)
		s->o.max_header_bytes = 16 * 1024;
	if (!s->o.max_url_bytes)
		s->o.max_url_bytes = 8 * 1024;
	if (!s->o.idle_timeout_sec)
		s->o.idle_timeout_sec = 60;
	if (!s->o.header_timeout_sec)
		s->o.header_timeout_sec = 30;
	if (!s->o.body_timeout_sec)
		s->o.body_timeout_sec = 30;
	if (!s->o.body_min_rate)
		s->o.body_min_rate = 1024;
	if (!s->o.max_connections)
		s->o.max_connections = 256;
	if (!s->o.log)
		s->o.log = stderr;
	s->o.listen = s->listen;
	s->o.region = s->region;
	s->o.access_key = s->access_key;
	s->o.secret_key = s->secret_key;
	s->o.domains = s->domains;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->idle, NULL);
	if (RAND_bytes((unsigned char *)&s->boot, sizeof(s->boot)) != 1)
		s->boot = (uint32_t)time(NULL);
	/* A stable owner id derived from the node id. */
	snprintf(s->owner_id, sizeof(s->owner_id), "%s%s%s%s", core_node_id(c), core_node_id(c),
		 core_node_id(c), core_node_id(c));

	int rc;
	if (o->metrics_open_cidr && *o->metrics_open_cidr &&
	    ops_cidrs_parse(o->metrics_open_cidr, &s->metrics_open, err) != 0) {
		s3d_stop(s, 0);
		return SL_EINVAL;
	}
	s->o.metrics_open_cidr = NULL; /* parsed into s->metrics_open */
	rc = s3d_watch_new(s, err);
	if (rc != 0) {
		s3d_stop(s, 0);
		return rc;
	}
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	rc = s3d_parse_listen(s->listen, &ss, &sl, err);
	if (rc != 0) {
		s3d_stop(s, 0);
		return rc;
	}
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			 MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	if (o->tls_cert || o->tls_key) {
		rc = s3d_tls_new(o->tls_cert, o->tls_key, &s->tls, err);
		if (rc != 0) {
			s3d_stop(s, 0);
			return rc;
		}
		flags |= MHD_USE_TLS;
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	uint16_t port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
						 : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	/* The per-connection memory pool holds the header section and the I/O
	 * buffers: a header section larger than our limit is answered by us with
	 * RequestHeaderSectionTooLarge; only far larger ones hit MHD's 431. */
	size_t pool = s->o.max_header_bytes * 2 + S3D_IO_BLOCK + 64 * 1024;
	s->mhd = MHD_start_daemon(
		flags, port, NULL, NULL, s3d_on_access, s, MHD_OPTION_EXTERNAL_LOGGER, s3d_mhd_log,
		s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_URI_LOG_CALLBACK,
		s3d_on_uri, s, MHD_OPTION_NOTIFY_COMPLETED, s3d_on_completed, s,
		MHD_OPTION_UNESCAPE_CALLBACK, s3d_unescape_none, s, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned int)s->o.idle_timeout_sec, MHD_OPTION_CONNECTION_LIMIT,
		(unsigned int)s->o.max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
		MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1024 * 1024), MHD_OPTION_NOTIFY_CONNECTION,
		s3d_on_connection, s,
		/* last: without TLS the list ends here */
		s->tls ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END, s3d_tls_callback(),
		MHD_OPTION_END);
	if (!s->mhd) {
		int e = errno;
		s3d_stop(s, 0);
		return sl_err_set(err, SL_EIO, "cannot listen on %s: %s",
				  o->listen ? o->listen : "127.0.0.1:9000",
				  strerror(e ? e : EADDRINUSE));
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
	s->port = di ? di->port : port;
	*out = s;
	return 0;
}

unsigned s3d_port(const s3d *s)
{
	return s->port;
}

int s3d_inflight(s3d *s)
{
	pthread_mutex_lock(&s->lock);
	int n = s->inflight;
	pthread_mutex_unlock(&s->lock);
	return n;
}

void s3d_stop(s3d *s, unsigned grace_ms)
{
	if (!s)
		return;
	if (s->mhd) {
		MHD_socket fd = MHD_quiesce_daemon(s->mhd);
		if (fd != MHD_INVALID_SOCKET)
			close(fd);
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += grace_ms / 1000;
		dl.tv_nsec += (long)(grace_ms % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&s->lock);
		while (s->inflight > 0) {
			if (pthread_cond_timedwait(&s->idle, &s->lock, &dl) == ETIMEDOUT)
				break;
		}
		int left = s->inflight;
		pthread_mutex_unlock(&s->lock);
		if (left > 0 && !s->o.quiet)
			fprintf(s->o.log, "s3d: %d request(s) still running after %u ms, closing\n",
				left, grace_ms);
		MHD_stop_daemon(s->mhd);
	}
	s3d_watch_free(s); /* every connection is gone */
	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->lock);
	free(s->listen);
	free(s->region);
	if (s->secret_key)
		memset(s->secret_key, 0, strlen(s->secret_key));
	free(s->access_key);
	free(s->secret_key);
	free(s->domains);
	s3d_tls_free(s->tls);
	ops_cidrs_free(s->metrics_open);
	free(s);
}
