/*
 * s3bench.c - load generator for the S3 daemon benchmark: N threads, each
 * with one keep-alive libcurl handle, doing SigV4-signed (CURLOPT_AWS_SIGV4)
 * PUTs or GETs of one object size for a bounded time; or plain GETs of a
 * URL (the nginx static-file ceiling); or file write+fsync (the raw disk
 * ceiling). Prints one JSON line of results. PUT bodies are generated so
 * that no 4 MiB chunk repeats (the store dedupes identical chunks).
 * Not here: starting servers or comparing figures (bench/s3_bench.py).
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { MODE_PUT, MODE_GET, MODE_URL, MODE_DISK };

typedef struct bench_cfg {
	int mode;
	const char *endpoint, *bucket, *access_key, *secret_key, *region, *prefix, *key, *url, *dir;
	uint64_t size;
	int conc;
	double seconds;
	long min_ops;
} bench_cfg;

typedef struct bench_thread {
	const bench_cfg *cfg;
	int id;
	pthread_t th;
	long ops, errors;
	uint64_t bytes;
	unsigned char *pattern; /* 1 MiB of random bytes */
	uint64_t seq;
	/* upload state */
	uint64_t sent;
	char err[256];
} bench_thread;

#define PATTERN (1024 * 1024)
#define CHUNK (4ull * 1024 * 1024)

static double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Fills buf with object bytes [off, off+len): the pattern, with a stamp of
 * (thread, sequence, chunk) at each 4 MiB boundary so chunks never repeat. */
static void bench_fill(bench_thread *t, uint64_t off, char *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		uint64_t pos = off + done;
		size_t n = PATTERN - (size_t)(pos % PATTERN);
		if (n > len - done)
			n = len - done;
		memcpy(buf + done, t->pattern + pos % PATTERN, n);
		done += n;
	}
	for (uint64_t c = (off + CHUNK - 1) / CHUNK * CHUNK; c < off + len; c += CHUNK) {
		char stamp[48];
		int sn = snprintf(stamp, sizeof(stamp), "%04d:%012llu:%08llu|", t->id,
				  (unsigned long long)t->seq, (unsigned long long)(c / CHUNK));
		for (int i = 0; i < sn && c + (uint64_t)i < off + len; i++)
			buf[c + (uint64_t)i - off] = stamp[i];
	}
	if (off == 0 && len > 0) {
		char stamp[48];
		int sn = snprintf(stamp, sizeof(stamp), "%04d:%012llu:%08d|", t->id,
				  (unsigned long long)t->seq, 0);
		for (int i = 0; i < sn && (size_t)i < len; i++)
			buf[i] = stamp[i];
	}
}

static size_t bench_read(char *buf, size_t size, size_t nmemb, void *ud)
{
	bench_thread *t = ud;
	uint64_t left = t->cfg->size - t->sent;
	size_t n = size * nmemb;
	if (n > left)
		n = (size_t)left;
	bench_fill(t, t->sent, buf, n);
	t->sent += n;
	return n;
}

static size_t bench_write(char *buf, size_t size, size_t nmemb, void *ud)
{
	(void)buf;
	bench_thread *t = ud;
	t->bytes += size * nmemb;
	return size * nmemb;
}

static void *bench_http(void *arg)
{
	bench_thread *t = arg;
	const bench_cfg *c = t->cfg;
	CURL *h = curl_easy_init();
	if (!h) {
		t->errors++;
		return NULL;
	}
	char userpwd[512], sig[128];
	snprintf(userpwd, sizeof(userpwd), "%s:%s", c->access_key ? c->access_key : "",
		 c->secret_key ? c->secret_key : "");
	snprintf(sig, sizeof(sig), "aws:amz:%s:s3", c->region);
	struct curl_slist *hdrs = NULL;
	hdrs = curl_slist_append(hdrs, "Expect:");
	hdrs = curl_slist_append(hdrs, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	if (c->mode != MODE_URL) {
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sig);
		curl_easy_setopt(h, CURLOPT_USERPWD, userpwd);
	}
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, bench_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, bench_read);
	curl_easy_setopt(h, CURLOPT_READDATA, t);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
	curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 2L * 1024 * 1024);
	double end = bench_now() + c->seconds;
	char url[2048];
	while (t->ops < c->min_ops || bench_now() < end) {
		if (c->mode == MODE_PUT) {
			snprintf(url, sizeof(url), "%s/%s/%s-t%d-%llu", c->endpoint, c->bucket,
				 c->prefix, t->id, (unsigned long long)t->seq);
			t->sent = 0;
			curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->size);
		} else if (c->mode == MODE_GET) {
			snprintf(url, sizeof(url), "%s/%s/%s", c->endpoint, c->bucket, c->key);
		} else {
			snprintf(url, sizeof(url), "%s", c->url);
		}
		curl_easy_setopt(h, CURLOPT_URL, url);
		CURLcode rc = curl_easy_perform(h);
		long code = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		if (rc != CURLE_OK || code != 200) {
			t->errors++;
			snprintf(t->err, sizeof(t->err), "%.200s: curl %d http %ld", url, (int)rc,
				 code);
			if (t->errors > 5)
				break;
		} else {
			t->ops++;
			if (c->mode == MODE_PUT)
				t->bytes += c->size;
		}
		t->seq++;
	}
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return NULL;
}

static void *bench_disk(void *arg)
{
	bench_thread *t = arg;
	const bench_cfg *c = t->cfg;
	char *buf = malloc(PATTERN);
	if (!buf) {
		t->errors++;
		return NULL;
	}
	double end = bench_now() + c->seconds;
	char path[4096];
	while (t->ops < c->min_ops || bench_now() < end) {
		snprintf(path, sizeof(path), "%s/disk-t%d-%llu", c->dir, t->id,
			 (unsigned long long)t->seq);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0) {
			t->errors++;
			break;
		}
		uint64_t off = 0;
		int bad = 0;
		while (off < c->size && !bad) {
			size_t n = c->size - off < PATTERN ? (size_t)(c->size - off) : PATTERN;
			bench_fill(t, off, buf, n);
			bad = write(fd, buf, n) != (ssize_t)n;
			off += n;
		}
		bad |= fsync(fd) != 0;
		close(fd);
		unlink(path);
		if (bad) {
			t->errors++;
			break;
		}
		t->ops++;
		t->bytes += c->size;
		t->seq++;
	}
	free(buf);
	return NULL;
}

static uint64_t bench_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end == 'k' || *end == 'K')
		v *= 1024;
	else if (*end == 'm' || *end == 'M')
		v *= 1024 * 1024;
	else if (*end == 'g' || *end == 'G')
		v *= 1024ull * 1024 * 1024;
	return v;
}

int main(int argc, char **argv)
{
	bench_cfg c = { .mode = MODE_GET,
			.region = "us-east-1",
			.prefix = "bench",
			.key = "obj",
			.size = 4096,
			.conc = 1,
			.seconds = 3,
			.min_ops = 1 };
	static const struct option lo[] = {
		{ "op", required_argument, NULL, 'o' },
		{ "endpoint", required_argument, NULL, 'e' },
		{ "bucket", required_argument, NULL, 'b' },
		{ "access-key", required_argument, NULL, 'a' },
		{ "secret-key", required_argument, NULL, 's' },
		{ "region", required_argument, NULL, 'r' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "key", required_argument, NULL, 'k' },
		{ "url", required_argument, NULL, 'u' },
		{ "dir", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 'z' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 't' },
		{ "min-ops", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	int o;
	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (o) {
		case 'o':
			c.mode = !strcmp(optarg, "put")	   ? MODE_PUT
				 : !strcmp(optarg, "get")  ? MODE_GET
				 : !strcmp(optarg, "url")  ? MODE_URL
				 : !strcmp(optarg, "disk") ? MODE_DISK
							   : -1;
			break;
		case 'e':
			c.endpoint = optarg;
			break;
		case 'b':
			c.bucket = optarg;
			break;
		case 'a':
			c.access_key = optarg;
			break;
		case 's':
			c.secret_key = optarg;
			break;
		case 'r':
			c.region = optarg;
			break;
		case 'p':
			c.prefix = optarg;
			break;
		case 'k':
			c.key = optarg;
			break;
		case 'u':
			c.url = optarg;
			break;
		case 'd':
			c.dir = optarg;
			break;
		case 'z':
			c.size = bench_size(optarg);
			break;
		case 'c':
			c.conc = atoi(optarg);
			break;
		case 't':
			c.seconds = atof(optarg);
			break;
		case 'm':
			c.min_ops = atol(optarg);
			break;
		default:
			fprintf(stderr, "s3bench: bad option\n");
			return 2;
		}
	}
	if (c.mode < 0 || c.conc < 1 || c.conc > 1024 || (c.mode == MODE_URL && !c.url) ||
	    (c.mode == MODE_DISK && !c.dir) ||
	    ((c.mode == MODE_PUT || c.mode == MODE_GET) && (!c.endpoint || !c.bucket))) {
		fprintf(stderr, "usage: s3bench --op put|get|url|disk [--endpoint URL --bucket B "
				"--access-key K "
				"--secret-key S] [--url URL] [--dir DIR] --size N --concurrency C "
				"--seconds T\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	bench_thread *ts = calloc((size_t)c.conc, sizeof(*ts));
	unsigned char *pattern = malloc(PATTERN);
	if (!ts || !pattern)
		return 1;
	FILE *ur = fopen("/dev/urandom", "rb");
	if (!ur || fread(pattern, 1, PATTERN, ur) != PATTERN)
		return 1;
	fclose(ur);
	double t0 = bench_now();
	for (int i = 0; i < c.conc; i++) {
		ts[i].cfg = &c;
		ts[i].id = i;
		ts[i].pattern = pattern;
		pthread_create(&ts[i].th, NULL, c.mode == MODE_DISK ? bench_disk : bench_http,
			       &ts[i]);
	}
	long ops = 0, errors = 0;
	uint64_t bytes = 0;
	const char *err = "";
	for (int i = 0; i < c.conc; i++) {
		pthread_join(ts[i].th, NULL);
		ops += ts[i].ops;
		errors += ts[i].errors;
		bytes += ts[i].bytes;
		if (ts[i].err[0])
			err = ts[i].err;
	}
	double secs = bench_now() - t0;
	printf("{\"op\": \"%s\", \"size\": %llu, \"concurrency\": %d, \"ops\": %ld, \"errors\": "
	       "%ld, "
	       "\"seconds\": %.3f, \"ops_per_s\": %.1f, \"mib_per_s\": %.1f, \"last_error\": "
	       "\"%s\"}\n",
	       c.mode == MODE_PUT   ? "put"
	       : c.mode == MODE_GET ? "get"
	       : c.mode == MODE_URL ? "url"
				    : "disk",
	       (unsigned long long)c.size, c.conc, ops, errors, secs, ops / secs,
	       bytes / secs / (1024.0 * 1024.0), err);
	free(ts);
	free(pattern);
	curl_global_cleanup();
	return errors && !ops ? 1 : 0;
}
