/*
 * serve.h - the `seglake serve` subcommand: opens a data directory and runs
 * the S3 daemon (and optionally a FUSE mount) in one process until SIGTERM
 * or SIGINT. cli/main.c dispatches to it; nothing else calls it.
 */
#ifndef SL_CLI_SERVE_H
#define SL_CLI_SERVE_H

/* argv[0] is "serve". Returns the process exit status. */
int cli_serve(int argc, char **argv);

#endif
