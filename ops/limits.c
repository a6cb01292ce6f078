/*
 * limits.c - failed-auth token buckets, in-flight counters, the replay
 * cache and client address resolution (see limits.h). Fixed-size tables
 * searched linearly or by a small open hash; one mutex. Not here: replies.
 */
#include "ops/limits.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#define LIMITS_BUCKETS 4096  /* failure buckets (IPs and keys together) */
#define LIMITS_INFLIGHT 1024 /* keys with requests in flight */

typedef struct cidr {
	int family;
	unsigned char a[16];
	int bits;
} cidr;

struct ops_cidrs {
	cidr *v;
	size_t n;
};

typedef struct fail_bucket {
	char name[136]; /* "i:" + ip or "k:" + key; "" = free */
	double tokens;
	int64_t last_ms;
} fail_bucket;

typedef struct inflight {
	char key[130];
	unsigned n;
} inflight;

typedef struct replay {
	unsigned char h[16];
	int64_t expires_ms;
} replay;

struct ops_limits {
	pthread_mutex_t mu;
	ops_limits_opts o;
	fail_bucket *fb;
	inflight *inf;
	replay *rp;
	size_t nrp;
	ops_cidrs *trusted;
};

/* ---- addresses ------------------------------------------------------------------ */

static int cidr_parse(const char *s, cidr *c, int allow_prefix)
{
	char buf[80];
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	char *slash = strchr(buf, '/');
	if (slash && !allow_prefix)
		return -1;
	if (slash)
		*slash = '\0';
	char *ip = buf;
	/* "[v6]" as some proxies write it */
	if (ip[0] == '[') {
		ip++;
		char *e = strchr(ip, ']');
		if (!e)
			return -1;
		*e = '\0';
	}
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, ip, c->a) == 1) {
		c->family = AF_INET;
		c->bits = 32;
	} else if (inet_pton(AF_INET6, ip, c->a) == 1) {
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		c->family = AF_INET6;
		c->bits = 128;
		if (!slash && memcmp(c->a, mapped, 12) == 0) {
			memmove(c->a, c->a + 12, 4);
			memset(c->a + 4, 0, 12);
			c->family = AF_INET;
			c->bits = 32;
		}
	} else {
		return -1;
	}
	if (slash) {
		char *end;
		long b = strtol(slash + 1, &end, 10);
		if (end == slash + 1 || *end || b < 0 || b > c->bits)
			return -1;
		c->bits = (int)b;
	}
	return 0;
}

static int cidr_has(const cidr *net, const cidr *ip)
{
	if (net->family != ip->family)
		return 0;
	int full = net->bits / 8, rem = net->bits % 8;
	if (memcmp(net->a, ip->a, (size_t)full) != 0)
		return 0;
	if (rem) {
		unsigned char mask = (unsigned char)(0xff << (8 - rem));
		return (net->a[full] & mask) == (ip->a[full] & mask);
	}
	return 1;
}

int ops_cidrs_parse(const char *list, ops_cidrs **out, sl_err *err)
{
	ops_cidrs *c = calloc(1, sizeof(*c));
	char *copy = strdup(list ? list : "");
	if (!c || !copy) {
		free(c);
		free(copy);
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	size_t cap = 1;
	for (const char *p = copy; *p; p++)
		cap += *p == ',';
	c->v = calloc(cap, sizeof(*c->v));
	if (!c->v) {
		free(copy);
		free(c);
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	char *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (strspn(t, " \t") == strlen(t))
			continue;
		if (cidr_parse(t, &c->v[c->n], 1) != 0) {
			sl_err_set(err, SL_EINVAL, "invalid address or CIDR '%s'", t);
			free(copy);
			ops_cidrs_free(c);
			return SL_EINVAL;
		}
		c->n++;
	}
	free(copy);
	*out = c;
	return 0;
}

int ops_cidrs_match(const ops_cidrs *c, const char *ip)
{
	cidr a;
	if (!c || !ip || cidr_parse(ip, &a, 0) != 0)
		return 0;
	for (size_t i = 0; i < c->n; i++)
		if (cidr_has(&c->v[i], &a))
			return 1;
	return 0;
}

void ops_cidrs_free(ops_cidrs *c)
{
	if (!c)
		return;
	free(c->v);
	free(c);
}

void ops_limits_client_ip(ops_limits *l, const char *peer, const char *xff, char *out, size_t cap)
{
	snprintf(out, cap, "%s", peer ? peer : "");
	if (!l || !l->trusted || !l->trusted->n || !xff || !*xff ||
	    !ops_cidrs_match(l->trusted, peer))
		return;
	/* Walk X-Forwarded-For from the right: the first address that is not a
	 * trusted proxy is the client. */
	size_t n = strlen(xff);
	char item[80];
	while (n > 0) {
		size_t end = n;
		while (n > 0 && xff[n - 1] != ',')
			n--;
		size_t len = end - n;
		const char *s = xff + n;
		while (len && (*s == ' ' || *s == '\t'))
			s++, len--;
		while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (n > 0)
			n--; /* skip the comma */
		if (len == 0 || len >= sizeof(item))
			return; /* malformed: keep what we have */
		memcpy(item, s, len);
		item[len] = '\0';
		cidr a;
		if (cidr_parse(item, &a, 0) != 0)
			return;
		snprintf(out, cap, "%s", item);
		if (!ops_cidrs_match(l->trusted, item))
			return;
	}
}

/* ---- limiter ----------------------------------------------------------------------- */

int ops_limits_new(const ops_limits_opts *o, ops_limits **out, sl_err *err)
{
	ops_limits *l = calloc(1, sizeof(*l));
	if (!l)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	if (o)
		l->o = *o;
	l->o.trusted_proxies = NULL;
	if (!l->o.fail_burst)
		l->o.fail_burst = 20;
	if (!l->o.fail_per_min)
		l->o.fail_per_min = 30;
	if (!l->o.inflight_per_key)
		l->o.inflight_per_key = 256;
	pthread_mutex_init(&l->mu, NULL);
	l->fb = calloc(LIMITS_BUCKETS, sizeof(*l->fb));
	l->inf = calloc(LIMITS_INFLIGHT, sizeof(*l->inf));
	l->nrp = l->o.replay_entries;
	if (l->nrp)
		l->rp = calloc(l->nrp, sizeof(*l->rp));
	if (!l->fb || !l->inf || (l->nrp && !l->rp)) {
		ops_limits_free(l);
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	if (o && o->trusted_proxies && *o->trusted_proxies) {
		int rc = ops_cidrs_parse(o->trusted_proxies, &l->trusted, err);
		if (rc < 0) {
			ops_limits_free(l);
			return rc;
		}
	}
	*out = l;
	return 0;
}

void ops_limits_free(ops_limits *l)
{
	if (!l)
		return;
	free(l->fb);
	free(l->inf);
	free(l->rp);
	ops_cidrs_free(l->trusted);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

/* Takes one token from the named bucket (l->mu held); 0 if there was one. */
static int limits_take(ops_limits *l, const char *name, int64_t now)
{
	fail_bucket *hit = NULL, *victim = NULL;
	for (size_t i = 0; i < LIMITS_BUCKETS; i++) {
		fail_bucket *b = &l->fb[i];
		if (b->name[0] && strcmp(b->name, name) == 0) {
			hit = b;
			break;
		}
		if (!victim || !b->name[0] || (victim->name[0] && b->last_ms < victim->last_ms))
			victim = b;
	}
	double burst = l->o.fail_burst, rate = l->o.fail_per_min / 60000.0;
	if (!hit) {
		hit = victim;
		snprintf(hit->name, sizeof(hit->name), "%s", name);
		hit->tokens = burst;
		hit->last_ms = now;
	}
	hit->tokens += (double)(now - hit->last_ms) * rate;
	if (hit->tokens > burst)
		hit->tokens = burst;
	hit->last_ms = now;
	if (hit->tokens >= 1.0) {
		hit->tokens -= 1.0;
		return 0;
	}
	return -1;
}

int ops_limits_auth_failed(ops_limits *l, const char *ip, const char *key, int64_t now_ms)
{
	if (!l)
		return OPS_LIMIT_OK;
	char name[140];
	int res = OPS_LIMIT_OK;
	pthread_mutex_lock(&l->mu);
	if (ip && *ip) {
		snprintf(name, sizeof(name), "i:%.130s", ip);
		if (limits_take(l, name, now_ms) != 0)
			res = OPS_LIMIT_IP;
	}
	if (key && *key) {
		snprintf(name, sizeof(name), "k:%.130s", key);
		if (limits_take(l, name, now_ms) != 0 && res == OPS_LIMIT_OK)
			res = OPS_LIMIT_KEY;
	}
	pthread_mutex_unlock(&l->mu);
	return res;
}

int ops_limits_enter(ops_limits *l, const char *key)
{
	if (!l || !key || !*key)
		return 0;
	int rc = -1;
	pthread_mutex_lock(&l->mu);
	inflight *free_slot = NULL;
	for (size_t i = 0; i < LIMITS_INFLIGHT; i++) {
		if (l->inf[i].n && strcmp(l->inf[i].key, key) == 0) {
			if (l->inf[i].n < l->o.inflight_per_key) {
				l->inf[i].n++;
				rc = 0;
			}
			pthread_mutex_unlock(&l->mu);
			return rc;
		}
		if (!l->inf[i].n && !free_slot)
			free_slot = &l->inf[i];
	}
	if (free_slot) {
		snprintf(free_slot->key, sizeof(free_slot->key), "%s", key);
		free_slot->n = 1;
		rc = 0;
	}
	pthread_mutex_unlock(&l->mu);
	return rc; /* table full: more keys in flight than slots, refuse */
}

void ops_limits_leave(ops_limits *l, const char *key)
{
	if (!l || !key || !*key)
		return;
	pthread_mutex_lock(&l->mu);
	for (size_t i = 0; i < LIMITS_INFLIGHT; i++)
		if (l->inf[i].n && strcmp(l->inf[i].key, key) == 0) {
			l->inf[i].n--;
			break;
		}
	pthread_mutex_unlock(&l->mu);
}

int ops_limits_replayed(ops_limits *l, const char *signature, int64_t now_ms, int64_t expires_ms)
{
	if (!l || !l->nrp || !signature || !*signature)
		return 0;
	unsigned char full[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)signature, strlen(signature), full);
	uint64_t h;
	memcpy(&h, full, sizeof(h));
	/* Open addressing over a short probe window; the stalest entry in the
	 * window is replaced when none is free. */
	size_t start = (size_t)(h % l->nrp), probe = l->nrp < 8 ? l->nrp : 8;
	replay *victim = NULL;
	int seen = 0;
	pthread_mutex_lock(&l->mu);
	for (size_t i = 0; i < probe; i++) {
		replay *r = &l->rp[(start + i) % l->nrp];
		if (r->expires_ms > now_ms && memcmp(r->h, full, sizeof(r->h)) == 0) {
			seen = 1;
			break;
		}
		if (!victim || r->expires_ms < victim->expires_ms)
			victim = r;
	}
	if (!seen && victim) {
		memcpy(victim->h, full, sizeof(victim->h));
		victim->expires_ms = expires_ms;
	}
	pthread_mutex_unlock(&l->mu);
	return seen;
}
