/*
 * fuzz_util.h - small helpers shared by the libFuzzer targets in tests/fuzz:
 * splitting a fuzz input into NUL-terminated lines and making / removing a
 * scratch directory. Header-only, static functions.
 * Not here: any parsing logic of Seglake itself (targets call the real code).
 */
#ifndef SL_TESTS_FUZZ_UTIL_H
#define SL_TESTS_FUZZ_UTIL_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A copy of the input split at '\n' into NUL-terminated lines (at most max;
 * lines past max are ignored). A line that contains NUL bytes simply ends
 * early for C-string consumers. */
typedef struct fuzz_lines {
	char *buf;
	char **line;
	size_t n;
} fuzz_lines;

static inline int fuzz_lines_split(const uint8_t *data, size_t size, size_t max, fuzz_lines *out)
{
	out->n = 0;
	out->buf = malloc(size + 1);
	out->line = calloc(max ? max : 1, sizeof(char *));
	if (!out->buf || !out->line) {
		free(out->buf);
		free(out->line);
		return -1;
	}
	memcpy(out->buf, data, size);
	out->buf[size] = '\0';
	char *p = out->buf, *end = out->buf + size;
	while (out->n < max) {
		out->line[out->n++] = p;
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		*nl = '\0';
		p = nl + 1;
		if (p == end)
			break; /* a final '\n' ends the last line, it starts no new one */
	}
	return 0;
}

static inline void fuzz_lines_free(fuzz_lines *l)
{
	free(l->buf);
	free(l->line);
	l->buf = NULL;
	l->line = NULL;
	l->n = 0;
}

/* Where scratch directories go: /dev/shm when present (fsync is cheap there). */
static inline const char *fuzz_tmp_base(void)
{
	struct stat st;
	const char *t = getenv("TMPDIR");
	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0)
		return "/dev/shm";
	return t && *t ? t : "/tmp";
}

/* Creates a fresh scratch directory; path receives it. 0 or -1. */
static inline int fuzz_mkdtemp(const char *tag, char *path, size_t cap)
{
	int n = snprintf(path, cap, "%s/seglake-fuzz-%s-XXXXXX", fuzz_tmp_base(), tag);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	return mkdtemp(path) ? 0 : -1;
}

/* Removes a directory tree made by a target (regular files and subdirs). */
static inline void fuzz_rmtree(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			char sub[4096];
			snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
			struct stat st;
			if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
				fuzz_rmtree(sub);
			else
				unlink(sub);
		}
		closedir(d);
	}
	rmdir(path);
}

#endif
