/*
 * repl.h - the `seglake repl` subcommands (pull, push, bootstrap, status,
 * conflicts, validate). cli/main.c dispatches to it; nothing else calls it.
 */
#ifndef SL_CLI_REPL_H
#define SL_CLI_REPL_H

/* argv[0] is "repl". Returns the process exit status. */
int cli_repl(int argc, char **argv);

#endif
