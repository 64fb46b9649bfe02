/*
 * noop-milter: a libmilter filter that does nothing, negotiating protocol
 * version 6 with no-reply flags. It is the C peer of bench/compare.sh: the
 * cost of the milter protocol itself for a filter that sees the headers.
 *
 * By default it asks for what wasmilter asks for with its default plugins
 * (protocol mask 0x190: no body, no unknown commands, no reply per header)
 * so both see the same traffic. It does not ask for SMFIP_NR_DATA, nor for
 * no-reply at MAIL or RCPT: Postfix leaves Nagle on and writes those events
 * as separate packets, so over TCP a silent milter meets delayed ACK and
 * stalls ~40 ms per message (issue 9, "the TCP trap").
 *
 * usage: noop-milter -p SOCKET [-m PROTOCOL-MASK]
 *   SOCKET is libmilter's notation: inet:PORT@127.0.0.1 or unix:/path.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

static unsigned long want = SMFIP_NOBODY | SMFIP_NOUNKNOWN | SMFIP_NR_HDR;

static sfsistat on_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
			     unsigned long f2, unsigned long f3, unsigned long *pf0,
			     unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	(void)ctx; (void)f0; (void)f2; (void)f3;
	*pf0 = 0;		/* no modifications */
	*pf1 = f1 & want;	/* only what the MTA offered */
	*pf2 = 0;
	*pf3 = 0;
	return SMFIS_CONTINUE;
}

static sfsistat on_connect(SMFICTX *c, char *h, _SOCK_ADDR *a) { (void)c; (void)h; (void)a; return SMFIS_CONTINUE; }
static sfsistat on_helo(SMFICTX *c, char *h) { (void)c; (void)h; return SMFIS_CONTINUE; }
static sfsistat on_envfrom(SMFICTX *c, char **v) { (void)c; (void)v; return SMFIS_CONTINUE; }
static sfsistat on_envrcpt(SMFICTX *c, char **v) { (void)c; (void)v; return SMFIS_CONTINUE; }
static sfsistat on_data(SMFICTX *c) { (void)c; return SMFIS_CONTINUE; }
static sfsistat on_eoh(SMFICTX *c) { (void)c; return SMFIS_CONTINUE; }
static sfsistat on_eom(SMFICTX *c) { (void)c; return SMFIS_CONTINUE; }
static sfsistat on_abort(SMFICTX *c) { (void)c; return SMFIS_CONTINUE; }
static sfsistat on_close(SMFICTX *c) { (void)c; return SMFIS_CONTINUE; }

/* With SMFIP_NR_HDR negotiated, libmilter wants SMFIS_NOREPLY here. */
static sfsistat on_header(SMFICTX *c, char *n, char *v)
{
	(void)c; (void)n; (void)v;
	return (want & SMFIP_NR_HDR) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
	.xxfi_name = "noop-milter",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = 0,
	.xxfi_connect = on_connect,
	.xxfi_helo = on_helo,
	.xxfi_envfrom = on_envfrom,
	.xxfi_envrcpt = on_envrcpt,
	.xxfi_header = on_header,
	.xxfi_eoh = on_eoh,
	.xxfi_body = NULL,
	.xxfi_eom = on_eom,
	.xxfi_abort = on_abort,
	.xxfi_close = on_close,
	.xxfi_unknown = NULL,
	.xxfi_data = on_data,
	.xxfi_negotiate = on_negotiate,
};

int main(int argc, char **argv)
{
	const char *sock = NULL;
	int opt;

	while ((opt = getopt(argc, argv, "p:m:")) != -1) {
		switch (opt) {
		case 'p':
			sock = optarg;
			break;
		case 'm':
			want = strtoul(optarg, NULL, 0);
			break;
		default:
			fprintf(stderr, "usage: %s -p SOCKET [-m PROTOCOL-MASK]\n", argv[0]);
			return 2;
		}
	}
	if (sock == NULL) {
		fprintf(stderr, "usage: %s -p SOCKET [-m PROTOCOL-MASK]\n", argv[0]);
		return 2;
	}
	if (strncmp(sock, "unix:", 5) == 0 || strncmp(sock, "local:", 6) == 0)
		unlink(strchr(sock, ':') + 1); /* a stale socket from a killed run */
	if (smfi_setconn((char *)sock) == MI_FAILURE || smfi_register(desc) == MI_FAILURE) {
		fprintf(stderr, "noop-milter: cannot set up %s\n", sock);
		return 1;
	}
	smfi_setbacklog(256);
	fprintf(stderr, "noop-milter: serving on %s, protocol mask 0x%lx (pid %d)\n", sock, want, (int)getpid());
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
