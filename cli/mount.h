/* mount.h - `seglake mount`: the FUSE mount as its own process (cli/mount.c). */
#ifndef SL_CLI_MOUNT_H
#define SL_CLI_MOUNT_H

/* argv[0] is "mount"; returns the process exit status. */
int cli_mount(int argc, char **argv);

#endif
