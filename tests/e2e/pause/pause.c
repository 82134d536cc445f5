/* The pod sandbox's only process: holds the sandbox's namespaces open and waits, exiting
 * cleanly when the runtime stops the sandbox. Built static so the image needs nothing else. */
#include <signal.h>
#include <unistd.h>

static void on_stop(int sig)
{
	(void)sig;
	_exit(0);
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_stop };

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	for (;;)
		pause();
	return 0;
}
