/*
 * serve.c - `seglake serve`: settings from flags, SEGLAKE_* environment
 * variables and an optional `key = value` config file (in that order of
 * precedence), the root credentials (explicit, or generated once into
 * DATA/credentials with mode 0600), then core_open + s3d_start (+
 * fs_mount_start with --mount), a once-a-second core_tick, and a graceful
 * shutdown on SIGTERM/SIGINT. Not here: HTTP (s3d/), FUSE (fs/).
 *
 * DATA/credentials format (lines, '#' comments allowed):
 *   access_key = <key id>
 *   secret_key = <secret>
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "cli/serve.h"
#include "cli/cli.h"
#include "common/err.h"
#include "core/core.h"
#include "fs/fs.h"
#include "repl/repl.h"
#include "auth/keys.h"
#include "ops/limits.h"
#include "ops/metrics.h"
#include "ops/ops.h"
#include "s3d/s3d.h"

/* Every setting by its config-file name; flags are --name, env SEGLAKE_NAME
 * (upper case, '-' -> '_'). */
enum {
	SV_DATA,
	SV_LISTEN,
	SV_ACCESS_KEY,
	SV_SECRET_KEY,
	SV_REGION,
	SV_DOMAIN,
	SV_MOUNT,
	SV_BUCKET,
	SV_ALLOW_OTHER,
	SV_MAX_OBJECT_SIZE,
	SV_MAX_HEADER_BYTES,
	SV_MAX_URL_BYTES,
	SV_IDLE_TIMEOUT,
	SV_MAX_CONNECTIONS,
	SV_SHUTDOWN_TIMEOUT,
	SV_QUIET,
	SV_CONFIG,
	SV_PEER,
	SV_PEER_CREDENTIALS,
	SV_REPL_TRIM,
	SV_TLS_CERT,
	SV_TLS_KEY,
	SV_PEER_CA,
	SV_TRUSTED_PROXIES,
	SV_METRICS_OPEN_CIDR,
	SV_AUTH_FAIL_BURST,
	SV_AUTH_FAIL_PER_MIN,
	SV_MAX_INFLIGHT_PER_KEY,
	SV_REPLAY_CACHE,
	SV_HEADER_TIMEOUT,
	SV_BODY_TIMEOUT,
	SV_BODY_MIN_RATE,
	SV_COUNT
};

static const char *const sv_names[SV_COUNT] = {
	"data",
	"listen",
	"access-key",
	"secret-key",
	"region",
	"domain",
	"mount",
	"bucket",
	"allow-other",
	"max-object-size",
	"max-header-bytes",
	"max-url-bytes",
	"idle-timeout",
	"max-connections",
	"shutdown-timeout",
	"quiet",
	"config",
	"peer",
	"peer-credentials",
	"repl-trim",
	"tls-cert",
	"tls-key",
	"peer-ca",
	"trusted-proxies",
	"metrics-open-cidr",
	"auth-fail-burst",
	"auth-fail-per-min",
	"max-inflight-per-key",
	"replay-cache",
	"header-timeout",
	"body-timeout",
	"body-min-rate",
};

typedef struct serve_cfg {
	char *val[SV_COUNT]; /* owned; NULL = unset */
} serve_cfg;

static void serve_usage(FILE *f)
{
	fprintf(f, "usage: seglake serve --data DIR [options]\n"
		   "  --listen ADDR          host:port to serve S3 on (default 127.0.0.1:9000)\n"
		   "  --access-key KEY       root access key id (default: DATA/credentials, "
		   "generated once)\n"
		   "  --secret-key SECRET    root secret key\n"
		   "  --region NAME          region clients sign for (default us-east-1)\n"
		   "  --domain D[,D2]        base domains for virtual-hosted-style (default "
		   "localhost)\n"
		   "  --mount DIR            also mount the lake at DIR (FUSE)\n"
		   "  --bucket NAME          with --mount: mount only this bucket\n"
		   "  --allow-other          with --mount: let other users access the mount\n"
		   "  --max-object-size N    largest object accepted (default 5G; K/M/G suffixes)\n"
		   "  --max-header-bytes N   request header section limit (default 16K)\n"
		   "  --max-url-bytes N      request target limit (default 8K)\n"
		   "  --idle-timeout SEC     close connections idle this long (default 60)\n"
		   "  --header-timeout SEC   request line + headers must arrive within SEC of the\n"
		   "                         connection opening or the previous request ending;\n"
		   "                         later, the connection is dropped (default 30)\n"
		   "  --body-timeout SEC     each SEC spent waiting for a request body must bring\n"
		   "                         body-min-rate x SEC bytes, else 400 RequestTimeout "
		   "and\n"
		   "                         nothing is stored (default 30)\n"
		   "  --body-min-rate N      bytes/s a body must average per window (default 1K)\n"
		   "  --max-connections N    concurrent connections (default 256)\n"
		   "  --shutdown-timeout SEC grace for in-flight requests on SIGTERM (default 30)\n"
		   "  --quiet                no per-request log lines\n"
		   "  --config FILE          read `name = value` settings (same names as the "
		   "flags)\n"
		   "  --peer URL             replicate from this peer (repeatable; env/config: "
		   "comma list)\n"
		   "  --peer-credentials F   keys to sign requests to peers (access_key = / "
		   "secret_key =);\n"
		   "                         default SEGLAKE_PEER_ACCESS_KEY/_SECRET_KEY, else the "
		   "root key\n"
		   "  --repl-trim            trim the oplog to what every pulling peer "
		   "acknowledged\n"
		   "  --tls-cert FILE        serve S3 over HTTPS with this PEM certificate chain\n"
		   "  --tls-key FILE         and this PEM private key (both re-read on SIGHUP)\n"
		   "  --trusted-proxies CIDRS  take the client address from X-Forwarded-For behind "
		   "these\n"
		   "  --metrics-open-cidr CIDRS  serve /metrics without authentication to these "
		   "addresses\n"
		   "  --auth-fail-burst N    failed authentications allowed at once per IP/key "
		   "(default 20)\n"
		   "  --auth-fail-per-min N  ... then N per minute; more get 503 SlowDown (default "
		   "30)\n"
		   "  --max-inflight-per-key N  concurrent requests per access key (default 256)\n"
		   "  --replay-cache N       refuse a header signature seen again (N entries; "
		   "default off)\n"
		   "  --peer-ca FILE         PEM CA bundle that https:// peers' certificates must "
		   "chain to\n"
		   "                         (default: the system store; verification cannot be "
		   "turned off)\n"
		   "Every setting can also come from the environment: SEGLAKE_LISTEN, "
		   "SEGLAKE_DATA, ...\n"
		   "Precedence: flags, then environment, then config file.\n");
}

static int serve_set(serve_cfg *c, int idx, const char *v, int overwrite)
{
	if (c->val[idx] && !overwrite)
		return 0;
	char *d = strdup(v);
	if (!d)
		return -1;
	free(c->val[idx]);
	c->val[idx] = d;
	return 0;
}

static int serve_index(const char *name)
{
	for (int i = 0; i < SV_COUNT; i++) {
		const char *a = sv_names[i], *b = name;
		while (*a && *b && (*a == *b || (*a == '-' && *b == '_')))
			a++, b++;
		if (!*a && !*b)
			return i;
	}
	return -1;
}

static char *serve_trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

/* Reads `name = value` lines; settings already set are kept. */
static int serve_read_config(serve_cfg *c, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "seglake serve: cannot read config %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	char line[4096];
	int lineno = 0, rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		char *s = serve_trim(line);
		if (!*s || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			fprintf(stderr, "seglake serve: %s:%d: expected name = value\n", path,
				lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		char *name = serve_trim(s), *val = serve_trim(eq + 1);
		int idx = serve_index(name);
		if (idx < 0 || idx == SV_CONFIG) {
			fprintf(stderr, "seglake serve: %s:%d: unknown setting '%s'\n", path,
				lineno, name);
			rc = -1;
			break;
		}
		if (serve_set(c, idx, val, 0) != 0) {
			rc = -1;
			break;
		}
	}
	fclose(f);
	return rc;
}

static int serve_parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	uint64_t mul = 1;
	if (*end) {
		switch (*end) {
		case 'k':
		case 'K':
			mul = 1024ull;
			break;
		case 'm':
		case 'M':
			mul = 1024ull * 1024;
			break;
		case 'g':
		case 'G':
			mul = 1024ull * 1024 * 1024;
			break;
		case 't':
		case 'T':
			mul = 1024ull * 1024 * 1024 * 1024;
			break;
		default:
			return -1;
		}
		end++;
		if (strcasecmp(end, "") != 0 && strcasecmp(end, "b") != 0 &&
		    strcasecmp(end, "ib") != 0)
			return -1;
	}
	if (v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

static int serve_truthy(const char *v)
{
	return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 ||
		     strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0);
}

/* ---- credentials ---------------------------------------------------------- */

static int serve_read_credentials(const char *path, char **ak, char **sk)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? 1 : -1;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		char *s = serve_trim(line);
		if (!*s || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq)
			continue;
		*eq = '\0';
		char *name = serve_trim(s), *val = serve_trim(eq + 1);
		if (strcmp(name, "access_key") == 0) {
			free(*ak);
			*ak = strdup(val);
		} else if (strcmp(name, "secret_key") == 0) {
			free(*sk);
			*sk = strdup(val);
		}
	}
	fclose(f);
	return *ak && *sk ? 0 : -1;
}

static int serve_random_string(char *out, size_t n, const char *alphabet)
{
	size_t an = strlen(alphabet);
	unsigned char rnd[128];
	if (n > sizeof(rnd) || RAND_bytes(rnd, (int)n) != 1)
		return -1;
	for (size_t i = 0; i < n; i++)
		out[i] = alphabet[rnd[i] % an];
	out[n] = '\0';
	return 0;
}

static int serve_make_credentials(const char *path, char **ak, char **sk)
{
	char a[24], s[48];
	memcpy(a, "SL", 2);
	if (serve_random_string(a + 2, 18, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != 0 ||
	    serve_random_string(s, 40,
				"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+"
				"/") != 0)
		return -1;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	char buf[256];
	int n = snprintf(buf, sizeof(buf),
			 "# Seglake root credentials, generated on first start. Keep private.\n"
			 "access_key = %s\nsecret_key = %s\n",
			 a, s);
	int ok = write(fd, buf, (size_t)n) == n && fsync(fd) == 0;
	close(fd);
	if (!ok) {
		unlink(path);
		return -1;
	}
	*ak = strdup(a);
	*sk = strdup(s);
	return *ak && *sk ? 0 : -1;
}

/* ---- replication ---------------------------------------------------------- */

/* The replication context: peers from --peer (comma list), their keys from
 * --peer-credentials / SEGLAKE_PEER_*, else this daemon's root key. */
static int serve_repl_new(serve_cfg *cfg, core *c, const char *ak, const char *sk, repl **out)
{
	const char *list = cfg->val[SV_PEER] ? cfg->val[SV_PEER] : "";
	char *copy = strdup(list), *save = NULL;
	const char *peers[64];
	size_t n = 0;
	for (char *t = copy ? strtok_r(copy, ", ", &save) : NULL; t && n < 64;
	     t = strtok_r(NULL, ", ", &save))
		peers[n++] = t;
	char *pak = NULL, *psk = NULL;
	sl_err err = { 0 };
	if (n && (cfg->val[SV_PEER_CREDENTIALS] || getenv("SEGLAKE_PEER_ACCESS_KEY")) &&
	    repl_creds_load(cfg->val[SV_PEER_CREDENTIALS], &pak, &psk, &err) != 0) {
		fprintf(stderr, "seglake serve: %s\n", err.msg);
		free(copy);
		return -1;
	}
	repl_opts ro = { .peers = peers,
			 .npeers = n,
			 .trim = serve_truthy(cfg->val[SV_REPL_TRIM]) };
	ro.creds.access_key = pak ? pak : ak;
	ro.creds.secret_key = psk ? psk : sk;
	ro.creds.region = cfg->val[SV_REGION];
	ro.creds.ca_file = cfg->val[SV_PEER_CA];
	int rc = repl_new(c, &ro, out, &err);
	if (rc != 0)
		fprintf(stderr, "seglake serve: %s\n", err.msg);
	if (psk)
		memset(psk, 0, strlen(psk));
	free(pak);
	free(psk);
	free(copy);
	return rc;
}

/* ---- keys, metrics, limits -------------------------------------------------- */

/* Opens the key store (the root key joins it), the metrics registry and the
 * abuse limits from the settings. */
static int serve_ops_new(serve_cfg *cfg, const char *data, const char *ak, const char *sk,
			 keys **ks, ops_metrics **met, ops_limits **lim)
{
	sl_err err = { 0 };
	int changed = 0;
	if (keys_open(data, ks, &err) != 0 || keys_ensure_root(*ks, ak, sk, &changed, &err) != 0) {
		fprintf(stderr, "seglake serve: key store: %s\n", err.msg);
		return -1;
	}
	if (changed)
		printf("seglake: root key %s recorded in the key table (secret sealed with the "
		       "master key, %s)\n",
		       ak, keys_master_source(*ks));
	ops_limits_opts lo = { 0 };
	struct {
		int idx;
		unsigned *un;
		size_t *sz;
	} nums[] = {
		{ SV_AUTH_FAIL_BURST, &lo.fail_burst, NULL },
		{ SV_AUTH_FAIL_PER_MIN, &lo.fail_per_min, NULL },
		{ SV_MAX_INFLIGHT_PER_KEY, &lo.inflight_per_key, NULL },
		{ SV_REPLAY_CACHE, NULL, &lo.replay_entries },
	};
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		const char *v = cfg->val[nums[i].idx];
		uint64_t n;
		if (!v)
			continue;
		if (serve_parse_size(v, &n) != 0 || n > 100000000) {
			fprintf(stderr, "seglake serve: bad value for --%s: '%s'\n",
				sv_names[nums[i].idx], v);
			return -1;
		}
		if (nums[i].un)
			*nums[i].un = (unsigned)n;
		else
			*nums[i].sz = (size_t)n;
	}
	lo.trusted_proxies = cfg->val[SV_TRUSTED_PROXIES];
	if (ops_limits_new(&lo, lim, &err) != 0) {
		fprintf(stderr, "seglake serve: --trusted-proxies: %s\n", err.msg);
		return -1;
	}
	*met = ops_metrics_new();
	if (!*met) {
		fprintf(stderr, "seglake serve: out of memory\n");
		return -1;
	}
	return 0;
}

/* ---- main loop ------------------------------------------------------------ */

int cli_serve(int argc, char **argv)
{
	serve_cfg cfg = { 0 };
	int rc = 1;
	core *c = NULL;
	s3d *srv = NULL;
	fs_mount *mnt = NULL;
	repl *rp = NULL;
	char *ak = NULL, *sk = NULL;
	keys *ks = NULL;
	ops_metrics *met = NULL;
	ops_limits *lim = NULL;
	ops_admin *adm = NULL;

	static const struct option longopts[] = {
		{ "data", required_argument, NULL, 1000 + SV_DATA },
		{ "listen", required_argument, NULL, 1000 + SV_LISTEN },
		{ "access-key", required_argument, NULL, 1000 + SV_ACCESS_KEY },
		{ "secret-key", required_argument, NULL, 1000 + SV_SECRET_KEY },
		{ "region", required_argument, NULL, 1000 + SV_REGION },
		{ "domain", required_argument, NULL, 1000 + SV_DOMAIN },
		{ "mount", required_argument, NULL, 1000 + SV_MOUNT },
		{ "bucket", required_argument, NULL, 1000 + SV_BUCKET },
		{ "allow-other", no_argument, NULL, 1000 + SV_ALLOW_OTHER },
		{ "max-object-size", required_argument, NULL, 1000 + SV_MAX_OBJECT_SIZE },
		{ "max-header-bytes", required_argument, NULL, 1000 + SV_MAX_HEADER_BYTES },
		{ "max-url-bytes", required_argument, NULL, 1000 + SV_MAX_URL_BYTES },
		{ "idle-timeout", required_argument, NULL, 1000 + SV_IDLE_TIMEOUT },
		{ "max-connections", required_argument, NULL, 1000 + SV_MAX_CONNECTIONS },
		{ "shutdown-timeout", required_argument, NULL, 1000 + SV_SHUTDOWN_TIMEOUT },
		{ "quiet", no_argument, NULL, 1000 + SV_QUIET },
		{ "config", required_argument, NULL, 1000 + SV_CONFIG },
		{ "peer", required_argument, NULL, 1000 + SV_PEER },
		{ "peer-credentials", required_argument, NULL, 1000 + SV_PEER_CREDENTIALS },
		{ "repl-trim", no_argument, NULL, 1000 + SV_REPL_TRIM },
		{ "tls-cert", required_argument, NULL, 1000 + SV_TLS_CERT },
		{ "tls-key", required_argument, NULL, 1000 + SV_TLS_KEY },
		{ "peer-ca", required_argument, NULL, 1000 + SV_PEER_CA },
		{ "trusted-proxies", required_argument, NULL, 1000 + SV_TRUSTED_PROXIES },
		{ "metrics-open-cidr", required_argument, NULL, 1000 + SV_METRICS_OPEN_CIDR },
		{ "auth-fail-burst", required_argument, NULL, 1000 + SV_AUTH_FAIL_BURST },
		{ "auth-fail-per-min", required_argument, NULL, 1000 + SV_AUTH_FAIL_PER_MIN },
		{ "max-inflight-per-key", required_argument, NULL, 1000 + SV_MAX_INFLIGHT_PER_KEY },
		{ "replay-cache", required_argument, NULL, 1000 + SV_REPLAY_CACHE },
		{ "header-timeout", required_argument, NULL, 1000 + SV_HEADER_TIMEOUT },
		{ "body-timeout", required_argument, NULL, 1000 + SV_BODY_TIMEOUT },
		{ "body-min-rate", required_argument, NULL, 1000 + SV_BODY_MIN_RATE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	optind = 1;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (opt == 'h') {
			serve_usage(stdout);
			return 0;
		}
		if (opt < 1000 || opt >= 1000 + SV_COUNT) {
			serve_usage(stderr);
			return 2;
		}
		char peers[8192]; /* --peer repeats: kept as a comma list */
		if (opt == 1000 + SV_PEER && cfg.val[SV_PEER] &&
		    snprintf(peers, sizeof(peers), "%s,%s", cfg.val[SV_PEER], optarg) <
			    (int)sizeof(peers))
			optarg = peers;
		if (serve_set(&cfg, opt - 1000, optarg ? optarg : "true", 1) != 0)
			goto out;
	}
	if (optind < argc) {
		fprintf(stderr, "seglake serve: unexpected argument '%s'\n", argv[optind]);
		serve_usage(stderr);
		rc = 2;
		goto out;
	}
	/* Environment fills what flags left unset. */
	for (int i = 0; i < SV_COUNT; i++) {
		char env[64] = "SEGLAKE_";
		size_t o = strlen(env);
		for (const char *p = sv_names[i]; *p && o < sizeof(env) - 1; p++)
			env[o++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		env[o] = '\0';
		const char *v = getenv(env);
		if (v && *v && serve_set(&cfg, i, v, 0) != 0)
			goto out;
	}
	if (cfg.val[SV_CONFIG] && serve_read_config(&cfg, cfg.val[SV_CONFIG]) != 0) {
		rc = 2;
		goto out;
	}
	if (!cfg.val[SV_DATA]) {
		fprintf(stderr, "seglake serve: --data DIR is required\n");
		serve_usage(stderr);
		rc = 2;
		goto out;
	}

	s3d_opts so = { 0 };
	so.listen = cfg.val[SV_LISTEN];
	so.region = cfg.val[SV_REGION];
	so.domains = cfg.val[SV_DOMAIN];
	so.quiet = serve_truthy(cfg.val[SV_QUIET]);
	so.tls_cert = cfg.val[SV_TLS_CERT];
	so.tls_key = cfg.val[SV_TLS_KEY];
	if (!so.tls_cert != !so.tls_key) {
		fprintf(stderr, "seglake serve: --tls-cert and --tls-key go together\n");
		rc = 2;
		goto out;
	}
	struct {
		int idx;
		uint64_t *u64;
		size_t *sz;
		unsigned *un;
	} nums[] = {
		{ SV_MAX_OBJECT_SIZE, &so.max_object_size, NULL, NULL },
		{ SV_MAX_HEADER_BYTES, NULL, &so.max_header_bytes, NULL },
		{ SV_MAX_URL_BYTES, NULL, &so.max_url_bytes, NULL },
		{ SV_IDLE_TIMEOUT, NULL, NULL, &so.idle_timeout_sec },
		{ SV_HEADER_TIMEOUT, NULL, NULL, &so.header_timeout_sec },
		{ SV_BODY_TIMEOUT, NULL, NULL, &so.body_timeout_sec },
		{ SV_BODY_MIN_RATE, NULL, NULL, &so.body_min_rate },
		{ SV_MAX_CONNECTIONS, NULL, NULL, &so.max_connections },
	};
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		const char *v = cfg.val[nums[i].idx];
		uint64_t n;
		if (!v)
			continue;
		if (serve_parse_size(v, &n) != 0 || n == 0 || (!nums[i].u64 && n > 0xffffffffu)) {
			fprintf(stderr, "seglake serve: bad value for --%s: '%s'\n",
				sv_names[nums[i].idx], v);
			rc = 2;
			goto out;
		}
		if (nums[i].u64)
			*nums[i].u64 = n;
		else if (nums[i].sz)
			*nums[i].sz = (size_t)n;
		else
			*nums[i].un = (unsigned)n;
	}
	uint64_t grace_sec = 30;
	if (cfg.val[SV_SHUTDOWN_TIMEOUT] &&
	    (serve_parse_size(cfg.val[SV_SHUTDOWN_TIMEOUT], &grace_sec) != 0 || grace_sec > 3600)) {
		fprintf(stderr, "seglake serve: bad --shutdown-timeout\n");
		rc = 2;
		goto out;
	}

	/* Credentials: explicit, or DATA/credentials (created on first start). */
	const char *data = cfg.val[SV_DATA];
	char credpath[4096];
	snprintf(credpath, sizeof(credpath), "%s/credentials", data);
	int generated = 0;
	if (cfg.val[SV_ACCESS_KEY] || cfg.val[SV_SECRET_KEY]) {
		if (!cfg.val[SV_ACCESS_KEY] || !cfg.val[SV_SECRET_KEY]) {
			fprintf(stderr, "seglake serve: --access-key and --secret-key go "
					"together\n");
			rc = 2;
			goto out;
		}
		ak = strdup(cfg.val[SV_ACCESS_KEY]);
		sk = strdup(cfg.val[SV_SECRET_KEY]);
	}

	/* Signals are taken synchronously by this thread only; every thread
	 * started below inherits the blocked mask. */
	sigset_t sigs;
	cli_block_signals(&sigs);

	core_opts co = { 0 };
	co.max_object_size = so.max_object_size;
	sl_err err = { 0 };
	if (core_open(data, &co, &c, &err) != 0) {
		fprintf(stderr, "seglake serve: cannot open %s: %s\n", data, err.msg);
		goto out;
	}
	if (!ak) {
		int cr = serve_read_credentials(credpath, &ak, &sk);
		if (cr == 1) {
			if (serve_make_credentials(credpath, &ak, &sk) != 0) {
				fprintf(stderr, "seglake serve: cannot create %s: %s\n", credpath,
					strerror(errno));
				goto out;
			}
			generated = 1;
		} else if (cr != 0) {
			fprintf(stderr,
				"seglake serve: cannot read access_key/secret_key from %s\n",
				credpath);
			goto out;
		}
	}
	if (!ak || !sk) {
		fprintf(stderr, "seglake serve: out of memory\n");
		goto out;
	}
	so.access_key = ak;
	so.secret_key = sk;
	/* Keys, policies, metrics and limits (auth/keys.h, ops/). The root key
	 * joins the key table; DATA/credentials (or the flags) stay valid. */
	if (serve_ops_new(&cfg, data, ak, sk, &ks, &met, &lim) != 0)
		goto out;
	so.keys = ks;
	so.metrics = met;
	so.limits = lim;
	so.metrics_open_cidr = cfg.val[SV_METRICS_OPEN_CIDR];
	if (serve_repl_new(&cfg, c, ak, sk, &rp) != 0)
		goto out;
	so.repl_route = repl_route;
	so.repl_ctx = rp;
	if (s3d_start(c, &so, &srv, &err) != 0) {
		fprintf(stderr, "seglake serve: %s\n", err.msg);
		goto out;
	}
	if (cfg.val[SV_MOUNT]) {
		fs_opts fo = { 0 };
		fo.mountpoint = cfg.val[SV_MOUNT];
		fo.bucket = cfg.val[SV_BUCKET];
		fo.allow_other = serve_truthy(cfg.val[SV_ALLOW_OTHER]);
		if (fs_mount_start(c, &fo, &mnt, &err) != 0) {
			fprintf(stderr, "seglake serve: cannot mount %s: %s\n", fo.mountpoint,
				err.msg);
			mnt = NULL;
			goto out;
		}
	}

	if (repl_start_workers(rp, &err) != 0) {
		fprintf(stderr, "seglake serve: %s\n", err.msg);
		goto out;
	}
	ops_env oenv = { .c = c, .k = ks, .metrics = met };
	if (ops_admin_start(&oenv, &adm, &err) != 0) {
		fprintf(stderr, "seglake serve: %s\n", err.msg);
		goto out;
	}

	const char *listen = so.listen ? so.listen : "127.0.0.1:9000";
	char host[256];
	snprintf(host, sizeof(host), "%s", listen);
	char *colon = strrchr(host, ':');
	if (colon)
		*colon = '\0';
	if (!host[0] || strcmp(host, "0.0.0.0") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	if (host[0] == '[' || strcmp(host, "::") == 0)
		snprintf(host, sizeof(host), "%s",
			 strcmp(host, "[::]") == 0 || strcmp(host, "::") == 0 ? "[::1]" : host);
	char endpoint[320];
	snprintf(endpoint, sizeof(endpoint), "%s://%s:%u", so.tls_cert ? "https" : "http", host,
		 s3d_port(srv));
	printf("seglake: serving S3 on %s (region %s, data %s)\n", endpoint,
	       so.region ? so.region : "us-east-1", data);
	if (generated)
		printf("seglake: generated root credentials in %s (mode 0600)\n", credpath);
	if (cfg.val[SV_ACCESS_KEY])
		printf("seglake: point awscli at it: AWS_ACCESS_KEY_ID=%s "
		       "AWS_SECRET_ACCESS_KEY=<your --secret-key> aws --endpoint-url %s s3 ls\n",
		       ak, endpoint);
	else
		printf("seglake: point awscli at it: AWS_ACCESS_KEY_ID=%s "
		       "AWS_SECRET_ACCESS_KEY=<secret_key in %s> aws --endpoint-url %s s3 ls\n",
		       ak, credpath, endpoint);
	if (mnt)
		printf("seglake: mounted at %s\n", cfg.val[SV_MOUNT]);
	printf("seglake: ready (pid %d)\n", (int)getpid());
	fflush(stdout);

	/* Housekeeping on this thread: core_tick once a second until a signal. */
	int sig = 0;
	int mount_gone = 0;
	for (;;) {
		struct timespec ts = { 1, 0 };
		sig = sigtimedwait(&sigs, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGHUP && so.tls_cert) {
			if (s3d_tls_reload_files(srv, &err) == 0)
				fprintf(stderr,
					"seglake: SIGHUP: TLS certificate reloaded from %s\n",
					so.tls_cert);
			else
				fprintf(stderr,
					"seglake: SIGHUP: TLS reload failed, keeping the current "
					"certificate: %s\n",
					err.msg);
		}
		core_tick(c);
		repl_tick(rp);
		if (mnt && !mount_gone && fs_mount_done(mnt)) {
			fprintf(stderr, "seglake: the mount was unmounted from outside; S3 keeps "
					"serving\n");
			mount_gone = 1;
		}
	}
	fprintf(stderr,
		"seglake: %s received, shutting down (waiting up to %llus for %d request(s))\n",
		sig == SIGTERM ? "SIGTERM" : "SIGINT", (unsigned long long)grace_sec,
		s3d_inflight(srv));
	ops_admin_stop(adm); /* running admin commands stop at a safe point */
	adm = NULL;
	repl_stop(rp);
	s3d_stop(srv, (unsigned)grace_sec * 1000);
	repl_free(rp);
	rp = NULL;
	srv = NULL;
	if (mnt)
		fs_mount_stop(mnt);
	mnt = NULL;
	keys_close(ks);
	ks = NULL;
	core_close(c);
	c = NULL;
	fprintf(stderr, "seglake: stopped\n");
	rc = 0;
out:
	ops_admin_stop(adm);
	repl_stop(rp);
	s3d_stop(srv, 0);
	repl_free(rp);
	if (mnt)
		fs_mount_stop(mnt);
	keys_close(ks);
	ops_limits_free(lim);
	ops_metrics_free(met);
	core_close(c);
	if (sk)
		memset(sk, 0, strlen(sk));
	free(ak);
	free(sk);
	for (int i = 0; i < SV_COUNT; i++)
		free(cfg.val[i]);
	return rc;
}
