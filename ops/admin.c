/*
 * admin.c - the admin socket (see ops.h for the protocol): the server
 * inside the daemon (an accept thread plus one thread per connection,
 * token checked in constant time, commands run through ops_exec with
 * progress streamed back and cancellation read from the socket), and the
 * client used by the CLI. Not here: the commands themselves (exec.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "ops/ops.h"

#define ADMIN_MAX_CONN 16

struct ops_admin {
	ops_env env;
	int lfd;
	int wake[2]; /* pipe: wakes the accept thread on stop */
	pthread_t thr;
	int thr_started;
	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char token_path[4200];
	char token[65];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int nconn;
	int stopping;
};

typedef struct admin_conn {
	ops_admin *a;
	int fd;
	int cancelled;
} admin_conn;

/* ---- line I/O ---------------------------------------------------------------- */

static int admin_write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int admin_send_json(int fd, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	if (!s)
		return -1;
	size_t n = strlen(s);
	int rc = admin_write_all(fd, s, n);
	if (rc == 0)
		rc = admin_write_all(fd, "\n", 1);
	free(s);
	return rc;
}

/* Reads one line (without the newline) into a malloc'd buffer, waiting at
 * most timeout_ms per read (-1: forever). NULL on EOF, error, timeout or a
 * line longer than OPS_LINE_MAX. the reader keeps bytes read past the line. */
typedef struct line_reader {
	char *buf;
	size_t len, cap;
} line_reader;

static char *admin_read_line(int fd, line_reader *lr, int timeout_ms, volatile sig_atomic_t *cancel,
			     int *cancel_sent)
{
	for (;;) {
		char *nl = lr->buf ? memchr(lr->buf, '\n', lr->len) : NULL;
		if (nl) {
			size_t l = (size_t)(nl - lr->buf);
			char *line = malloc(l + 1);
			if (!line)
				return NULL;
			memcpy(line, lr->buf, l);
			line[l] = '\0';
			memmove(lr->buf, nl + 1, lr->len - l - 1);
			lr->len -= l + 1;
			return line;
		}
		if (lr->len >= OPS_LINE_MAX)
			return NULL;
		if (lr->cap - lr->len < 4096) {
			size_t nc = lr->cap ? lr->cap * 2 : 8192;
			char *b = realloc(lr->buf, nc);
			if (!b)
				return NULL;
			lr->buf = b;
			lr->cap = nc;
		}
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int wait = cancel ? 200 : timeout_ms;
		int pr = poll(&pfd, 1, wait);
		if (pr < 0 && errno == EINTR)
			pr = 0;
		if (pr < 0)
			return NULL;
		if (cancel && *cancel && cancel_sent && !*cancel_sent) {
			*cancel_sent = 1;
			admin_write_all(fd, "cancel\n", 7);
		}
		if (pr == 0) {
			if (!cancel && timeout_ms >= 0)
				return NULL;
			continue;
		}
		ssize_t r = recv(fd, lr->buf + lr->len, lr->cap - lr->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return NULL;
		lr->len += (size_t)r;
	}
}

/* ---- server -------------------------------------------------------------------- */

/* Progress from a running command: send it, and look for "cancel" or a
 * hang-up from the client without blocking. */
static int admin_emit(void *ctx, json_t *msg)
{
	admin_conn *cn = ctx;
	if (cn->a->stopping)
		cn->cancelled = 1;
	if (!cn->cancelled && admin_send_json(cn->fd, msg) != 0)
		cn->cancelled = 1;
	struct pollfd pfd = { .fd = cn->fd, .events = POLLIN };
	if (!cn->cancelled && poll(&pfd, 1, 0) > 0) {
		char b[64];
		ssize_t r = recv(cn->fd, b, sizeof(b), MSG_DONTWAIT);
		if (r <= 0 || memmem(b, (size_t)r, "cancel", 6))
			cn->cancelled = 1;
	}
	return cn->cancelled;
}

static void admin_reply_error(int fd, const sl_err *err, int code)
{
	json_t *j = json_pack("{sbsissss}", "ok", 0, "code", code, "name", sl_code_name(code),
			      "error", err->msg[0] ? err->msg : sl_code_name(code));
	if (j)
		admin_send_json(fd, j);
	json_decref(j);
}

static void admin_handle(admin_conn *cn)
{
	line_reader lr = { 0 };
	sl_err err = { 0 };
	char *line = admin_read_line(cn->fd, &lr, 10000, NULL, NULL);
	json_t *req = line ? json_loads(line, 0, NULL) : NULL;
	if (line)
		OPENSSL_cleanse(line, strlen(line));
	free(line);
	if (lr.buf)
		OPENSSL_cleanse(lr.buf, lr.cap);
	free(lr.buf);
	if (!req || !json_is_object(req)) {
		sl_err_set(&err, SL_EINVAL, "bad admin request (expected one JSON line)");
		admin_reply_error(cn->fd, &err, SL_EINVAL);
		json_decref(req);
		return;
	}
	const char *tok = json_string_value(json_object_get(req, "token"));
	if (!tok || strlen(tok) != 64 || CRYPTO_memcmp(tok, cn->a->token, 64) != 0) {
		sl_err_set(&err, SL_EINVAL, "bad admin token");
		admin_reply_error(cn->fd, &err, SL_EINVAL);
		json_decref(req);
		return;
	}
	json_t *result = NULL;
	int rc = ops_exec(&cn->a->env, req, admin_emit, cn, &result, &err);
	json_decref(req);
	if (rc < 0) {
		admin_reply_error(cn->fd, &err, rc);
	} else {
		json_t *j = json_pack("{sbso}", "ok", 1, "result", result ? result : json_object());
		if (j)
			admin_send_json(cn->fd, j);
		json_decref(j);
	}
}

static void *admin_conn_main(void *arg)
{
	admin_conn *cn = arg;
	ops_admin *a = cn->a;
	admin_handle(cn);
	close(cn->fd);
	free(cn);
	pthread_mutex_lock(&a->mu);
	a->nconn--;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

static void *admin_accept_main(void *arg)
{
	ops_admin *a = arg;
	for (;;) {
		struct pollfd pfd[2] = { { .fd = a->lfd, .events = POLLIN },
					 { .fd = a->wake[0], .events = POLLIN } };
		int pr = poll(pfd, 2, -1);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0 || pfd[1].revents || a->stopping)
			break;
		int fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&a->mu);
		int busy = a->nconn >= ADMIN_MAX_CONN;
		if (!busy)
			a->nconn++;
		pthread_mutex_unlock(&a->mu);
		if (busy) {
			sl_err err;
			sl_err_set(&err, SL_ENOTSUP, "too many admin connections, try again");
			admin_reply_error(fd, &err, SL_ENOTSUP);
			close(fd);
			continue;
		}
		admin_conn *cn = calloc(1, sizeof(*cn));
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (cn) {
			cn->a = a;
			cn->fd = fd;
		}
		if (!cn || pthread_create(&t, &at, admin_conn_main, cn) != 0) {
			free(cn);
			close(fd);
			pthread_mutex_lock(&a->mu);
			a->nconn--;
			pthread_cond_broadcast(&a->cv);
			pthread_mutex_unlock(&a->mu);
		}
		pthread_attr_destroy(&at);
	}
	return NULL;
}

static int admin_write_token(ops_admin *a, sl_err *err)
{
	unsigned char rnd[32];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return sl_err_set(err, SL_EINTERNAL, "no randomness for the admin token");
	for (int i = 0; i < 32; i++)
		snprintf(a->token + 2 * i, 3, "%02x", rnd[i]);
	OPENSSL_cleanse(rnd, sizeof(rnd));
	char tmp[4300];
	snprintf(tmp, sizeof(tmp), "%s.tmp", a->token_path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ok = fd >= 0 && fchmod(fd, 0600) == 0 && write(fd, a->token, 64) == 64 &&
		 write(fd, "\n", 1) == 1 && fsync(fd) == 0;
	if (fd >= 0)
		close(fd);
	if (!ok || rename(tmp, a->token_path) != 0) {
		int e = errno;
		unlink(tmp);
		return sl_err_set(err, SL_EIO, "cannot write %s: %s", a->token_path, strerror(e));
	}
	return 0;
}

int ops_admin_start(const ops_env *env, ops_admin **out, sl_err *err)
{
	ops_admin *a = calloc(1, sizeof(*a));
	if (!a)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	a->env = *env;
	a->lfd = -1;
	a->wake[0] = a->wake[1] = -1;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	const char *dir = core_dir(env->c);
	snprintf(a->token_path, sizeof(a->token_path), "%s/admin.token", dir);
	int n = snprintf(a->sock_path, sizeof(a->sock_path), "%s/admin.sock", dir);
	int rc = 0;
	if (n < 0 || (size_t)n >= sizeof(a->sock_path)) {
		rc = sl_err_set(err, SL_EINVAL,
				"data dir path too long for a Unix socket (%zu bytes max): %s",
				sizeof(a->sock_path) - 12, dir);
		goto fail;
	}
	if ((rc = admin_write_token(a, err)) < 0)
		goto fail;
	/* We hold the data dir lock, so a socket file left there is stale. */
	unlink(a->sock_path);
	a->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, a->sock_path, strlen(a->sock_path) + 1);
	mode_t old = umask(077);
	int bound = a->lfd >= 0 && bind(a->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	umask(old);
	if (!bound || chmod(a->sock_path, 0600) != 0 || listen(a->lfd, 16) != 0 ||
	    pipe2(a->wake, O_CLOEXEC) != 0) {
		rc = sl_err_set(err, SL_EIO, "admin socket %s: %s", a->sock_path, strerror(errno));
		goto fail;
	}
	if (pthread_create(&a->thr, NULL, admin_accept_main, a) != 0) {
		rc = sl_err_set(err, SL_EINTERNAL, "cannot start the admin thread");
		goto fail;
	}
	a->thr_started = 1;
	*out = a;
	return 0;
fail:
	ops_admin_stop(a);
	return rc;
}

void ops_admin_stop(ops_admin *a)
{
	if (!a)
		return;
	a->stopping = 1;
	if (a->wake[1] >= 0 && write(a->wake[1], "x", 1) < 0) {
		/* the accept thread also sees a->stopping on its next wakeup */
	}
	if (a->thr_started)
		pthread_join(a->thr, NULL);
	/* Running commands see stopping through their progress callback. */
	pthread_mutex_lock(&a->mu);
	while (a->nconn > 0)
		pthread_cond_wait(&a->cv, &a->mu);
	pthread_mutex_unlock(&a->mu);
	if (a->lfd >= 0) {
		close(a->lfd);
		unlink(a->sock_path);
	}
	if (a->token_path[0])
		unlink(a->token_path);
	if (a->wake[0] >= 0)
		close(a->wake[0]);
	if (a->wake[1] >= 0)
		close(a->wake[1]);
	OPENSSL_cleanse(a->token, sizeof(a->token));
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	free(a);
}

/* ---- client --------------------------------------------------------------------- */

int ops_admin_call(const char *dir, json_t *req, ops_emit_fn emit, void *ctx,
		   volatile sig_atomic_t *cancel, json_t **result, sl_err *err)
{
	*result = NULL;
	char path[4200], tok[130];
	snprintf(path, sizeof(path), "%s/admin.token", dir);
	int tfd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t tn = tfd >= 0 ? read(tfd, tok, sizeof(tok) - 1) : -1;
	if (tfd >= 0)
		close(tfd);
	if (tn < 64)
		return sl_err_set(err, SL_ENOTSUP, "no admin token at %s: %s", path,
				  tn < 0 ? strerror(errno) : "too short");
	tok[64] = '\0';
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/admin.sock", dir);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return sl_err_set(err, SL_EINVAL, "data dir path too long for a Unix socket");
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		OPENSSL_cleanse(tok, sizeof(tok));
		return sl_err_set(err, SL_ENOTSUP, "no daemon answers on %s: %s", sa.sun_path,
				  strerror(e));
	}
	json_t *msg = json_deep_copy(req);
	json_object_set_new(msg, "token", json_string(tok));
	OPENSSL_cleanse(tok, sizeof(tok));
	int rc = admin_send_json(fd, msg);
	json_decref(msg);
	if (rc != 0) {
		close(fd);
		return sl_err_set(err, SL_EIO, "cannot send to the admin socket: %s",
				  strerror(errno));
	}
	line_reader lr = { 0 };
	int cancel_sent = 0;
	rc = SL_EIO;
	sl_err_set(err, SL_EIO, "the daemon closed the admin connection without an answer");
	char *line;
	while ((line = admin_read_line(fd, &lr, -1, cancel, &cancel_sent))) {
		json_t *j = json_loads(line, 0, NULL);
		free(line);
		if (!j) {
			rc = sl_err_set(err, SL_EIO, "bad line from the admin socket");
			break;
		}
		if (json_object_get(j, "progress")) {
			if (emit)
				emit(ctx, j);
			json_decref(j);
			continue;
		}
		json_t *ok = json_object_get(j, "ok");
		if (json_is_true(ok)) {
			*result = json_incref(json_object_get(j, "result"));
			rc = 0;
			sl_err_clear(err);
		} else {
			json_int_t code = json_integer_value(json_object_get(j, "code"));
			const char *msgs = json_string_value(json_object_get(j, "error"));
			rc = code < 0 ? (int)code : SL_EINTERNAL;
			sl_err_set(err, rc, "%s", msgs ? msgs : "admin command failed");
		}
		json_decref(j);
		break;
	}
	free(lr.buf);
	close(fd);
	return rc;
}
