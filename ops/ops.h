/*
 * ops.h - the operator surface over a lake: one set of admin/ops commands
 * (status, fsck, scrub, gc, mpu-gc, snapshot, maintenance, key management)
 * expressed as JSON requests, executed either in the CLI process on a data
 * dir it opened itself or inside the daemon through the admin socket.
 *
 * Admin socket protocol (DATA/admin.sock, mode 0600; the daemon writes a
 * fresh random token into DATA/admin.token, mode 0600, at each start):
 *   client -> one line: {"token": T, "cmd": NAME, "args": {...}}
 *   server -> zero or more lines {"progress": {"phase", "done", "total"}}
 *             then one line {"ok": true, "result": {...}}
 *                        or {"ok": false, "code": N, "name": "ENOKEY", "error": MSG}
 *   client -> may send "cancel\n" (or hang up) at any time: a long command
 *             stops at its next safe point and still answers with what it did.
 * One request per connection. Lines are JSON without newlines inside.
 *
 * Not here: the work itself (core/maint.h, auth/keys.h), terminal rendering
 * (cli/ops.c), HTTP endpoints (s3d/).
 */
#ifndef SL_OPS_OPS_H
#define SL_OPS_OPS_H

#include <jansson.h>
#include <signal.h>

#include "auth/keys.h"
#include "common/err.h"
#include "core/core.h"

#define OPS_LINE_MAX (256 * 1024) /* longest protocol line */

struct ops_metrics;

/* What commands run against. metrics may be NULL (CLI direct mode). */
typedef struct ops_env {
	core *c;
	keys *k;
	struct ops_metrics *metrics;
} ops_env;

/* Receives a progress message ({"progress": {...}}); returns non-zero to
 * ask the running command to stop at its next safe point. */
typedef int (*ops_emit_fn)(void *ctx, json_t *msg);

/* Runs one request ({"cmd": ..., "args": {...}}). *result (owned by the
 * caller) is the command's JSON result. Long commands report through emit
 * (may be NULL) about 5 times a second at most. */
int ops_exec(const ops_env *env, json_t *req, ops_emit_fn emit, void *ctx, json_t **result,
	     sl_err *err);

/* The lowest oplog position gc must keep chunks for: the smallest seq every
 * pulling peer acknowledged (DATA/repl-acks.json, written by repl/), or the
 * oplog head when there are none. */
int64_t ops_gc_keep_after(core *c);

/* ---- admin socket server (inside `seglake serve`) -------------------------- */

typedef struct ops_admin ops_admin;

/* Creates DATA/admin.token and DATA/admin.sock and serves them on a thread
 * (one more thread per connection). env must outlive the server. */
int ops_admin_start(const ops_env *env, ops_admin **out, sl_err *err);
/* Stops accepting, asks running commands to stop, waits for them, removes
 * the socket and token. NULL is a no-op. */
void ops_admin_stop(ops_admin *a);

/* ---- client ---------------------------------------------------------------- */

/* Sends req to the daemon holding dir and waits for the answer, passing
 * progress messages to emit. If *cancel becomes non-zero (a signal handler
 * sets it), asks the daemon to stop the command. Returns 0 with *result,
 * the daemon's error (code and message), or SL_ENOTSUP if no admin socket
 * answers at dir. */
int ops_admin_call(const char *dir, json_t *req, ops_emit_fn emit, void *ctx,
		   volatile sig_atomic_t *cancel, json_t **result, sl_err *err);

#endif
