/* ops.h - the admin and ops commands of the seglake CLI (cli/ops.c):
 * key, status, fsck, scrub, gc, mpu-gc, snapshot, restore, maintenance. */
#ifndef SL_CLI_OPS_H
#define SL_CLI_OPS_H

/* argv[0] is the command name. Returns the process exit status. */
int cli_ops(const char *cmd, int argc, char **argv);

#endif
