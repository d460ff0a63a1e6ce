/* SpecKV firmware: boots straight from ROM, prints its banner, checks LiteDRAM and serves a
 * small command loop on the UART. The prefetcher and the hint mailbox grow from here. */

#include <stdio.h>
#include <string.h>

#include <irq.h>
#include <libbase/uart.h>
#include <libbase/console.h>
#include <generated/csr.h>
#include <generated/mem.h>

#ifdef CSR_SDRAM_BASE
#include <liblitedram/sdram.h>
#endif

#include "commands.h"
#include "dispatch.h"
#include "predict.h"
#include "mailbox.h"

#define LINE_MAX 96

/* Non-blocking line editor: returns a completed line or NULL. */
static char *read_line(void)
{
	static char line[LINE_MAX];
	static unsigned len = 0;
	while (readchar_nonblock()) {
		char c = getchar();
		if (c == '\r' || c == '\n') {
			line[len] = 0;
			len = 0;
			putchar('\n');
			return line;
		}
		if ((c == 0x7f || c == 0x08) && len > 0) {
			len--;
			fputs("\x08 \x08", stdout);
		} else if (c >= 0x20 && len < LINE_MAX - 1) {
			line[len++] = c;
			putchar(c);
		}
	}
	return NULL;
}

int main(void)
{
	/* Not ready until DRAM is up: the mailbox RAM keeps its words through a reset. */
	*mbox(MBOX_STATUS) = 0;
#ifdef CONFIG_CPU_HAS_INTERRUPT
	irq_setmask(0);
	irq_setie(1);
#endif
	uart_init();

	printf("\nSpecKV-FPGA firmware %s\n", FW_BUILD_ID);
	printf("cpu: %s @ %lu Hz\n", CONFIG_CPU_HUMAN_NAME, (unsigned long)CONFIG_CLOCK_FREQUENCY);

#ifdef CSR_SDRAM_BASE
	if (!sdram_init()) {
		printf("dram: init FAILED\n");
	} else {
		unsigned errors = dram_check(1024);
		printf("dram: %lu KiB at 0x%08lx, check %s (%u errors)\n",
		       (unsigned long)(MAIN_RAM_SIZE / 1024), (unsigned long)MAIN_RAM_BASE,
		       errors ? "FAILED" : "ok", errors);
	}
#endif
	/* The LSTM runs on its custom function unit when the SoC has one. */
	printf("lstm: %s\n", pred_lstm_engine(1) ? "custom function unit" : "C");
	/* Configure the cache engine, then tell the host the device is up (mailbox word 0). */
	dispatch_init();
	mailbox_set_ready();
	printf("ready\nspeckv> ");

	for (;;) {
		dispatch_poll();
		char *line = read_line();
		if (line) {
			if (line[0] && command_run(line) != 0)
				printf("unknown command '%s' (try 'help')\n", line);
			printf("speckv> ");
		}
	}
	return 0;
}
