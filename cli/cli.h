/* cli.h - shared helpers of the seglake command-line front end. */
#ifndef SL_CLI_CLI_H
#define SL_CLI_CLI_H

#include <signal.h>

#include "common/err.h"
#include "core/core.h"

/* Prints "seglake: CMD: message" to stderr and returns the exit status (1). */
int cli_fail(const char *cmd, const sl_err *err);
/* The data dir from --data (already parsed), $SEGLAKE_DATA, or "./data". */
const char *cli_data_dir(const char *flag);
/* Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (threads started
 * later inherit it), fills *sigs with them for sigtimedwait, and ignores
 * SIGPIPE: long-running commands take their signals synchronously. */
void cli_block_signals(sigset_t *sigs);
/* Local object commands (cli/local.c). */
int cli_local(const char *cmd, int argc, char **argv);

#endif
