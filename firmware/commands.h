#ifndef SPECKV_COMMANDS_H
#define SPECKV_COMMANDS_H

/* Run one command line; returns 0 when the command is known. */
int command_run(char *line);
/* Write/read a pattern over `words` 32-bit words of main RAM; returns the error count. */
unsigned dram_check(unsigned words);

#endif
