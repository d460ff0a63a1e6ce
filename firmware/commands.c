/* The firmware's UART commands. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libbase/uart.h>
#include <generated/csr.h>
#include <generated/mem.h>
#include <generated/soc.h>

#include "commands.h"

unsigned dram_check(unsigned words)
{
#ifdef MAIN_RAM_BASE
	volatile unsigned *ram = (volatile unsigned *)MAIN_RAM_BASE;
	unsigned errors = 0, i;
	if (words > MAIN_RAM_SIZE / 4)
		words = MAIN_RAM_SIZE / 4;
	for (i = 0; i < words; i++)
		ram[i] = 0x9e3779b9u * (i + 1);
	flush_l2_cache();
	for (i = 0; i < words; i++)
		if (ram[i] != 0x9e3779b9u * (i + 1))
			errors++;
	return errors;
#else
	(void)words;
	return 0;
#endif
}

static void cmd_help(void)
{
	puts("help          this list");
	puts("ident         identifier registers and SoC identifier string");
	puts("dram [words]  write/read check of main RAM");
	puts("echo TEXT     print TEXT");
	puts("exit [code]   end the simulation with an exit code (simulation only)");
}

static void cmd_ident(void)
{
	char ident[256];
	unsigned i;
	for (i = 0; i < sizeof(ident) - 1; i++) {
		ident[i] = MMPTR(CSR_IDENTIFIER_MEM_BASE + CONFIG_CSR_ALIGNMENT / 8 * i);
		if (ident[i] == 0)
			break;
	}
	ident[i] = 0;
	printf("magic 0x%08lx version 0x%08lx sys_clk %lu Hz\n",
	       (unsigned long)identifier_regs_magic_read(),
	       (unsigned long)identifier_regs_version_read(),
	       (unsigned long)identifier_regs_sys_clk_freq_read());
	printf("ident %s\n", ident);
}

static void cmd_exit(const char *arg)
{
#ifdef CSR_SIM_CTRL_BASE
	unsigned code = arg ? strtoul(arg, NULL, 0) : 0;
	printf("exit %u\n", code);
	sim_ctrl_ctrl_write((1 << CSR_SIM_CTRL_CTRL_FINISH_OFFSET) |
	                    ((code & 0xff) << CSR_SIM_CTRL_CTRL_CODE_OFFSET));
#else
	(void)arg;
	puts("exit: not a simulation");
#endif
}

int command_run(char *line)
{
	char *cmd = strtok(line, " ");
	char *arg = strtok(NULL, "");
	if (!cmd)
		return 0;
	if (!strcmp(cmd, "help"))
		cmd_help();
	else if (!strcmp(cmd, "ident"))
		cmd_ident();
	else if (!strcmp(cmd, "dram")) {
		unsigned words = arg ? strtoul(arg, NULL, 0) : 1024;
		unsigned errors = dram_check(words);
		printf("dram check %u words: %s (%u errors)\n", words, errors ? "FAILED" : "ok", errors);
	} else if (!strcmp(cmd, "echo"))
		puts(arg ? arg : "");
	else if (!strcmp(cmd, "exit"))
		cmd_exit(arg);
	else
		return -1;
	return 0;
}
