/*
 * deliver-discard.c - the "discard" delivery method: every recipient is
 * reported delivered and nothing is stored.  For benchmarks of the queue
 * itself; never for real mail.
 */
#include <stdlib.h>

#include "delivery.h"
#include "util.h"

static void *
discard_init(const struct msagate_config *cfg, char **error)
{
	(void)cfg;
	(void)error;
	return xstrdup("discard");
}

static const char *
discard_relay(void *ctx)
{
	(void)ctx;
	return "discard";
}

static void
discard_deliver(void *ctx, const struct delivery_msg *msg,
    struct delivery_rcpt *rcpts, size_t n)
{
	(void)ctx;
	(void)msg;
	for (size_t i = 0; i < n; i++)
		delivery_set(&rcpts[i], DELIVERY_SENT, "2.0.0", "discarded");
}

const struct delivery_method delivery_discard = {
	.name = "discard",
	.batch = true,
	.init = discard_init,
	.relay = discard_relay,
	.deliver = discard_deliver,
	.free = free,
};
